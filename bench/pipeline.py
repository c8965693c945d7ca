"""Benchmark: one talk window, extract -> transform -> load, against the emulator.

    .venv/bin/python bench/pipeline.py [--sizes 1000,100000,1000000] [--paces instant,30s,120s]
        [--time-scale 100] [--repeats 3] [--workdir var/bench] [--no-ingest] [--report-only]

For each size a store with that many messages in ONE window is generated (in a child process,
so that its memory is not counted), its links point at records created in the emulator through
the admin API. For each pace (the emulator's `--bulk-pace`: jobs done at once, or taking a real
org's time, scaled down by `--time-scale` with the client's clock), `--repeats` times, a copy of
the store is taken, the links are synced, and `write_talk_logs` runs in a fresh child process
with every stage timed; the run with the median client / limit ratio is reported, with the
others' times. Peak RSS per stage comes from a sampler thread (/proc/self/statm every 5 ms,
attributed to the stage running at that moment); the task's peak is `ru_maxrss` of that
process, the reader's that of its message reader process (windows from 250,000 messages).

Client time is the run's wall time less the emulator's own work on the job data (its
`bulk_work_seconds`: CSV parsing, record writes) and less the client's sleeps between looks.
The limit, measured in the same child after the run: the window's rows read into tuples (a
plain SELECT), the final CSVs' bytes written to a file, and those bytes sent over loopback TLS
to a sink process. The peer: simple-salesforce's Bulk 2.0 upsert of the same CSV files in its
own child process (calls, time less the emulator's work and its sleeps, peak RSS). Plus, at
the instant pace, per-record REST upserts of the same rows (a sample, extrapolated), and the
DAG file parse time. Then, unless `--no-ingest`, the LINE WORKS ingestion of a window at the
same sizes (`bench/ingest.py`: download from the LINE WORKS emulator and store). Writes
`docs/performance.md` and `docs/performance.png`.
Not a test: never run by `make test`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is not a package

SIZES = (1_000, 100_000, 1_000_000)
PACES = ("instant", "30s", "120s")
TIME_SCALE = 100.0  # emulated seconds per wall second of paced jobs
REST_SAMPLE = 300  # rows per object upserted one by one; more rows are extrapolated
PAGE = os.sysconf("SC_PAGE_SIZE")
KEYS = {"TalkLog__c": "TalkLogKey__c", "Task": "LineWorksKey__c"}


# -- the org of each size ----------------------------------------------------------------------


def org_config(messages: int) -> Any:
    """Rooms grow with the volume (about 250 messages per room and day, up to 4,000 rooms)."""
    from talklog_dev.synth import GeneratorConfig

    rooms = min(4_000, max(30, messages // 250))
    return GeneratorConfig(
        seed=1,
        days=1,
        n_staff=max(8, rooms // 20),
        n_customers=rooms * 5 // 4,
        n_rooms=rooms,
        group_share=0.3,
        messages=messages,
        # LINE caps a message at 10,000 characters: long messages go up to that.
        # (The 32,000- and 131,072-character splits are exercised by the tests.)
        long_tiers=((2_000, 10_000),),
        long_tier_weights=(1.0,),
    )


def create_targets(emulator: Any, customers: int) -> dict[str, list[str]]:
    """Link target records of every kind, created in bulk through the admin API."""
    per_kind = customers // 2 + 10
    numbers = range(per_kind)
    rows = {
        "external_contact": ("ExternalContact__c", [{"Name": f"EC{n}"} for n in numbers]),
        "lead": ("Lead", [{"LastName": f"L{n}", "Company": f"Co{n}"} for n in numbers]),
        "contact": ("Contact", [{"LastName": f"C{n}"} for n in numbers]),
        "person_account": ("Account", [{"LastName": f"P{n}"} for n in numbers]),
    }
    return {kind: emulator.create_records(obj, values) for kind, (obj, values) in rows.items()}


# -- child: generate a store -------------------------------------------------------------------


def generate_store(messages: int, store: Path, targets_file: Path, user_id: str) -> None:
    from talklog.store.migrate import upgrade
    from talklog_dev.demo_store import remove_store_files
    from talklog_dev.synth import generate

    ids = json.loads(targets_file.read_text())
    config = org_config(messages).replace(
        target_ids=lambda kind, n: ids[str(kind)][n % len(ids[str(kind)])],
        salesforce_user_ids=lambda n: user_id if n % 4 else None,
    )
    remove_store_files(store)
    upgrade(f"sqlite:///{store}")
    generate(f"sqlite:///{store}", config)


# -- stage clock -------------------------------------------------------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * PAGE


def _max_rss_bytes() -> int:
    """This process's peak plus its children's (the message reader process runs beside it)."""
    import resource

    peaks = (resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF,
                                                            resource.RUSAGE_CHILDREN))  # fmt: skip
    return sum(peaks) * 1024


@dataclass
class StageStats:
    seconds: float = 0.0
    rows: int = 0
    api_calls: int = 0
    peak_rss: int = 0


class StageClock:
    """Exclusive wall time, API calls and peak RSS per stage; stages nest (innermost counts)."""

    def __init__(self, calls: Callable[[], int]) -> None:
        self.calls = calls
        self.stats: dict[str, StageStats] = {}
        self._stack: list[str] = ["setup"]
        self._since = time.perf_counter()
        self._calls_since = calls()
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            stats = self.stats.setdefault(self._stack[-1], StageStats())
            stats.peak_rss = max(stats.peak_rss, _rss_bytes())

    def _account(self) -> None:
        """Time and calls of the stage that ends; its memory is the sampler's (reading
        /proc here, at tens of thousands of stage changes, would add seconds to the run)."""
        now, calls = time.perf_counter(), self.calls()
        stats = self.stats.setdefault(self._stack[-1], StageStats())
        stats.seconds += now - self._since
        stats.api_calls += calls - self._calls_since
        self._since, self._calls_since = now, calls

    @contextlib.contextmanager
    def stage(self, name: str) -> Generator[StageStats]:
        self._account()
        self._stack.append(name)
        try:
            yield self.stats.setdefault(name, StageStats())
        finally:
            self._account()
            self._stack.pop()

    def close(self) -> None:
        self._account()
        self._stop.set()
        self._sampler.join()

    def timed(self, name: str, func: Callable, rows: Callable[[Any], int] | None = None):
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.stage(name) as stats:
                result = func(*args, **kwargs)
                stats.rows += rows(result) if rows else 0
            return result

        return wrapper

    def timed_iter(self, name: str, func: Callable, rows: Callable[[Any], int] | None = None):
        def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            iterator = iter(func(*args, **kwargs))
            while True:
                with self.stage(name) as stats:
                    item = next(iterator, _END)
                    if item is not _END:
                        stats.rows += rows(item) if rows else 1
                if item is _END:
                    return
                yield item

        return wrapper


_END = object()


# -- child: measure a window -------------------------------------------------------------------


@dataclass
class Sample:
    """The first rows of each object, for the per-record REST baseline."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def keep(self, object_name: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        kept = self.rows.setdefault(object_name, [])
        kept.extend(rows[: max(0, REST_SAMPLE - len(kept))])
        self.counts[object_name] = self.counts.get(object_name, 0) + len(rows)
        return rows


def instrument(clock: StageClock, sample: Sample, csv_dir: Path) -> None:
    """Wrap the pipeline's stages (module attributes) with the clock."""
    from talklog import ledger, pipeline
    from talklog.salesforce import bulk
    from talklog.unreadable_rows import UnreadableRows

    pipeline.room_contexts = clock.timed("extract: rooms, members, links", pipeline.room_contexts)
    pipeline.resolve_customers = clock.timed("extract: place customers (SOQL)",
                                             pipeline.resolve_customers)  # fmt: skip
    pipeline.open_window_lines = _timed_rooms(clock, pipeline.open_window_lines)
    ledger.claim_rooms = clock.timed("ledger: claims", ledger.claim_rooms, rows=_pairs)
    pipeline.room_claims = clock.timed("transform: recipients", pipeline.room_claims)
    pipeline.room_drafts = clock.timed("transform: drafts", pipeline.room_drafts)
    screen = clock.timed("transform: lines rendered, screened", UnreadableRows.screen)
    UnreadableRows.screen = screen
    pipeline.render_draft = clock.timed("transform: transcripts, rows", pipeline.render_draft)
    for name, object_name in (("talklog_rows", "TalkLog__c"), ("task_rows", "Task")):
        func = getattr(pipeline, name)
        rows = _listed(func, sample, object_name)
        setattr(pipeline, name, clock.timed("transform: transcripts, rows", rows, rows=len))
    bulk.CsvSpool.add = clock.timed("transform: spool", bulk.CsvSpool.add)
    pipeline._mark_delivered = clock.timed("ledger: mark delivered", pipeline._mark_delivered)
    bulk.CsvSpool.parts = clock.timed_iter("load: CSV build", bulk.CsvSpool.parts,
                                           rows=lambda part: part.rows)  # fmt: skip
    submit, collect = bulk.BulkClient._submit_part, bulk.BulkClient._collect_part
    wait_all = bulk.BulkClient._wait_all

    def submit_part(self: Any, object_name: str, operation: str, part: Any, *args: Any) -> Any:
        with clock.stage("(bench: CSV copy for the limit)"):
            number = len(list(csv_dir.glob("*.csv")))
            (csv_dir / f"{number:03d}-{object_name}.csv").write_bytes(part.data)
        with clock.stage(f"load: Bulk submit {object_name}") as stats:
            stats.rows += part.rows
            return submit(self, object_name, operation, part, *args)

    def watch(self: Any, watched: Any) -> None:
        with clock.stage("load: Bulk looks (sleeps included)"):
            wait_all(self, watched)

    def collect_part(self: Any, item: Any) -> None:
        with clock.stage(f"load: Bulk outcome {item.request.object_name}"):
            collect(self, item)

    bulk.BulkClient._submit_part = submit_part
    bulk.BulkClient._wait_all = watch
    bulk.BulkClient._collect_part = collect_part


def _pairs(rooms: Any) -> int:
    return sum(len(item.message_ids) for claims in rooms for item in claims)


def _timed_rooms(clock: StageClock, open_rooms: Callable) -> Callable:
    """Time the reading of the window's rooms, in this process or from the reader process."""

    @contextlib.contextmanager
    def opened(*args: Any, **kwargs: Any) -> Generator[Iterator[Any]]:
        with open_rooms(*args, **kwargs) as rooms:
            yield clock.timed_iter("extract: messages", lambda: rooms,
                                   rows=lambda item: len(item[1]))()  # fmt: skip

    return opened


def _listed(func: Callable, sample: Sample, object_name: str) -> Callable:
    return lambda *args, **kwargs: sample.keep(object_name, list(func(*args, **kwargs)))


def _handle(ready_file: Path) -> Any:
    from talklog_dev.emulator.process import EmulatorHandle

    info = json.loads(ready_file.read_text())
    return EmulatorHandle(**{k: info[k] for k in EmulatorHandle.__dataclass_fields__ if k in info})


def _emulator_counts(emulator: Any) -> tuple[dict[str, int], float]:
    stats = emulator.stats()
    return stats["api_calls"], stats.get("bulk_work_seconds", 0.0)


def _calls_since(emulator: Any, before: dict[str, int]) -> dict[str, int]:
    now = emulator.stats()["api_calls"]
    return {name: n - before.get(name, 0) for name, n in now.items() if n > before.get(name, 0)}


def measure(size: int, pace: str, scale: float, store: Path, ready_file: Path, out: Path) -> None:
    """Sync the links, then run one window with every stage timed; then the baselines."""
    from talklog.links import sync_links
    from talklog.loading import BulkLoader
    from talklog.pipeline import write_talk_logs
    from talklog.salesforce.bulk import BulkClient
    from talklog.salesforce.calls import ApiCallCounter
    from talklog.store import make_session_factory
    from talklog.talklogs import TalkLogSettings
    from talklog.windows import TalkWindow
    from talklog_dev.emulator.timescale import ScaledTime

    emulator = _handle(ready_file)
    emulator.set_pace(pace, time_scale=scale)
    time_ = ScaledTime(scale)
    session, token = emulator.session(), emulator.token()
    sf = emulator.salesforce()
    bulk = BulkClient(session, emulator.instance_url, token, refresh_token=emulator.token,
                      sleep=time_.sleep, clock=time_.clock)  # fmt: skip
    store_url = f"sqlite:///{store}"
    sessions = make_session_factory(store_url)
    loader = BulkLoader(bulk, sessions, sleep=time_.sleep)
    sync_links(sessions=sessions, query_all=sf.query_all_iter, loader=loader)
    counter = ApiCallCounter(session)
    sf_counter = ApiCallCounter(sf.session)
    calls_before, work_before = _emulator_counts(emulator)
    slept_before = time_.slept_s
    csv_dir = out.parent / f"csv-{size}-{pace}"
    shutil.rmtree(csv_dir, ignore_errors=True)
    csv_dir.mkdir(parents=True)
    window = TalkWindow(*org_config(size).window())
    clock = StageClock(lambda: counter.total + sf_counter.total)
    sample = Sample()
    instrument(clock, sample, csv_dir)
    rss_before = _rss_bytes()
    cpu_before = _cpu_seconds()
    profiler = _profiler()
    began = time.perf_counter()
    summary = write_talk_logs(
        sessions=sessions,
        store_url=store_url,
        query_all=sf.query_all_iter,
        loader=loader,
        window=window,
        settings=TalkLogSettings(),
        run_id="bench",
        api_calls=lambda: counter.total + sf_counter.total,
    )
    wall = time.perf_counter() - began
    cpu = {who: after - cpu_before[who] for who, after in _cpu_seconds().items()}
    if profiler:
        profiler.disable()
        profiler.dump_stats(out.parent / f"profile-{size}-{pace}.pstats")
    clock.close()
    copy = clock.stats.pop("(bench: CSV copy for the limit)", StageStats()).seconds
    _, work_after = _emulator_counts(emulator)
    slept = time_.slept_s - slept_before
    work = work_after - work_before
    result = {
        "size": size,
        "pace": pace,
        "time_scale": scale,
        "wall_s": wall - copy,
        "emulator_work_s": work,
        "slept_s": slept,
        "client_s": wall - copy - work - slept,
        "rss_before": rss_before,
        "peak_rss": _max_rss_bytes(),
        "task_peak_rss": _peak_rss_of("self"),
        "reader_peak_rss": _peak_rss_of("children"),
        "task_cpu_s": cpu["self"],  # the link sync left out, as in wall_s
        "reader_cpu_s": cpu["children"],
        "summary": summary.as_dict(),
        "api_calls": summary.api_calls,
        "bulk_calls": counter.total,
        "endpoints": _calls_since(emulator, calls_before),
        "stages": {name: asdict(stats) for name, stats in clock.stats.items() if name != "setup"},
        "csv_bytes": sum(path.stat().st_size for path in csv_dir.glob("*.csv")),
        "csv_files": len(list(csv_dir.glob("*.csv"))),
    }
    if pace == "instant":
        result["rest"] = rest_baseline(emulator, sf.session, sample)
    result["limit"] = limit_baseline(store, window, csv_dir, ready_file.parent / "tls")
    out.write_text(json.dumps(result, indent=1))


def _profiler() -> Any:
    """cProfile of the run when BENCH_PROFILE is set (its times are then not comparable)."""
    if not os.environ.get("BENCH_PROFILE"):
        return None
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    return profiler


# -- baselines ---------------------------------------------------------------------------------


def rest_baseline(emulator: Any, session: Any, sample: Sample) -> dict[str, Any]:
    """Per-record REST upserts (PATCH sobjects/X/ExtId/value) of the sampled rows, as new
    records (keys suffixed `|rest`); time extrapolated to every row when sampled."""
    link_ids = {r["LinkKey__c"]: r["Id"] for r in emulator.records("LineWorks__c")}
    base = f"{emulator.instance_url}/services/data/v66.0/sobjects"
    headers = {"Authorization": f"Bearer {emulator.token()}"}
    seconds, sent, calls, failed = 0.0, 0, 0, 0
    for object_name, rows in sample.rows.items():
        key_field = KEYS[object_name]
        began = time.perf_counter()
        for row in rows:
            body = _rest_body(row, key_field, link_ids)
            url = (
                f"{base}/{object_name}/{key_field}/{quote(str(row[key_field]) + '|rest', safe='')}"
            )
            response = session.patch(url, json=body, headers=headers, timeout=60)
            failed += response.status_code >= 300
        elapsed = time.perf_counter() - began
        seconds += elapsed / max(1, len(rows)) * sample.counts[object_name]
        sent += len(rows)
        calls += sample.counts[object_name]
    total = sum(sample.counts.values())
    return {
        "rows": total,
        "sampled": sent,
        "failed": failed,
        "seconds": seconds,
        "api_calls": calls,
        "extrapolated": sent < total,
    }


def _rest_body(row: dict[str, Any], key_field: str, link_ids: dict[str, str]) -> dict[str, Any]:
    from talklog.salesforce.bulk import NULL, UNCHANGED

    body: dict[str, Any] = {}
    for name, value in row.items():
        if name == key_field or value == UNCHANGED:
            continue
        if name == "LineWorks__r.LinkKey__c":
            name, value = "LineWorks__c", link_ids.get(str(value))
        body[name] = None if value == NULL else value
    if "TalkLogKey__c" in body and key_field != "TalkLogKey__c":
        body["TalkLogKey__c"] = f"{body['TalkLogKey__c']}|rest"
    return body


def _peak_rss_of(who: str) -> int:
    import resource

    target = resource.RUSAGE_SELF if who == "self" else resource.RUSAGE_CHILDREN
    return resource.getrusage(target).ru_maxrss * 1024


def _cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) of this process and of its ended children."""
    import resource

    return {
        who: usage.ru_utime + usage.ru_stime
        for who, usage in (
            ("self", resource.getrusage(resource.RUSAGE_SELF)),
            ("children", resource.getrusage(resource.RUSAGE_CHILDREN)),
        )
    }


def limit_baseline(store: Path, window: Any, csv_dir: Path, tls_dir: Path) -> dict[str, Any]:
    """The work itself: the window's messages read into tuples (a plain SELECT), the final
    CSVs' bytes written to a file, and sent over loopback TLS to a sink process."""
    import sqlite3
    import tempfile

    with contextlib.closing(sqlite3.connect(store)) as db:
        # Whatever of the run's ledger writes is still in the write-ahead log is checkpointed
        # first (so far always none), so the SELECT reads the store's file alone.
        busy, _, wal_pages = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            raise RuntimeError("the store's write-ahead log could not be checkpointed")
        began = time.perf_counter()
        cursor = db.execute(
            "SELECT * FROM messages WHERE sent_at >= ? AND sent_at < ?",
            (_sqlite_time(window.start), _sqlite_time(window.end)),
        )
        rows = sum(len(chunk) for chunk in iter(lambda: cursor.fetchmany(20_000), []))
    select_s = time.perf_counter() - began
    paths = sorted(csv_dir.glob("*.csv"))
    write_s = 0.0
    with tempfile.TemporaryFile() as sink_file:
        for path in paths:
            data = path.read_bytes()
            began = time.perf_counter()
            sink_file.write(data)
            sink_file.flush()
            write_s += time.perf_counter() - began
    send_s, sent = send_over_tls(paths, tls_dir)
    return {"select_rows": rows, "select_s": select_s, "write_s": write_s, "send_s": send_s,
            "bytes": sent, "seconds": select_s + write_s + send_s,
            "wal_pages_checkpointed": wal_pages}  # fmt: skip


TLS_SINK = r"""
import socket, ssl, sys
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
server = socket.create_server(("127.0.0.1", 0))
print(server.getsockname()[1], flush=True)
connection, _ = server.accept()
with context.wrap_socket(connection, server_side=True) as tls:
    head = b""
    while len(head) < 8:
        head += tls.recv(8 - len(head))
    size = int.from_bytes(head, "big")
    while size > 0:
        size -= len(tls.recv(min(size, 1 << 20)))
    tls.sendall(b"ok")
"""


def send_over_tls(paths: list[Path], tls_dir: Path) -> tuple[float, int]:
    """Seconds to send the files' bytes over loopback TLS (the emulator's certificate) to a
    process that reads and drops them; the sending includes the sink's answer."""
    import socket
    import ssl

    total = sum(path.stat().st_size for path in paths)
    sink = subprocess.Popen(
        [sys.executable, "-c", TLS_SINK, str(tls_dir / "server.pem"),
         str(tls_dir / "server-key.pem")], stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        port = int(sink.stdout.readline())
        context = ssl.create_default_context(cafile=str(tls_dir / "ca.pem"))
        seconds = 0.0
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(total.to_bytes(8, "big"))
            for path in paths:
                data = path.read_bytes()
                began = time.perf_counter()
                tls.sendall(data)
                seconds += time.perf_counter() - began
            began = time.perf_counter()
            assert tls.recv(2) == b"ok"
            seconds += time.perf_counter() - began
    finally:
        sink.wait(timeout=30)
    return seconds, total


def peer(size: int, pace: str, scale: float, ready_file: Path, csv_dir: Path, out: Path) -> None:
    """simple-salesforce's Bulk 2.0 upsert of the pipeline's CSV files, one call per file
    (it splits and sends the jobs itself), its sleeps at the emulator's time scale."""
    import simple_salesforce.bulk2 as bulk2

    from talklog_dev.emulator.timescale import ScaledTime

    emulator = _handle(ready_file)
    time_ = ScaledTime(scale)
    bulk2.sleep = time_.sleep
    sf = emulator.salesforce()
    calls_before, work_before = _emulator_counts(emulator)
    began = time.perf_counter()
    jobs = 0
    for path in sorted(csv_dir.glob("*.csv")):
        object_name = path.stem.split("-", 1)[1]
        kind = getattr(sf.bulk2, object_name)
        jobs += len(kind.upsert(csv_file=str(path), external_id_field=KEYS[object_name]))
    wall = time.perf_counter() - began
    _, work_after = _emulator_counts(emulator)
    work = work_after - work_before
    result = {"size": size, "pace": pace, "jobs": jobs, "wall_s": wall,
              "emulator_work_s": work, "slept_s": time_.slept_s,
              "client_s": wall - work - time_.slept_s, "peak_rss": _peak_rss_of("self"),
              "endpoints": _calls_since(emulator, calls_before)}  # fmt: skip
    result["api_calls"] = sum(result["endpoints"].values())
    out.write_text(json.dumps(result, indent=1))


def _sqlite_time(moment: Any) -> str:
    """How SQLAlchemy stores a naive UTC datetime in SQLite."""
    import datetime as dt

    return moment.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ")


def dag_parse_times(workdir: Path, runs: int = 3) -> dict[str, float]:
    """Median DagBag time of `dags/` and of one empty DAG file, each in a fresh process."""
    empty = workdir / "empty_dags"
    empty.mkdir(parents=True, exist_ok=True)
    (empty / "empty_dag.py").write_text(
        "from airflow.sdk import DAG\n\nwith DAG('empty', schedule=None):\n    pass\n"
    )
    found = {}
    for label, folder in (("project", REPO_ROOT / "dags"), ("empty", empty)):
        times = sorted(_parse_once(folder, workdir) for _ in range(runs))
        found[label] = times[len(times) // 2]
    return found


def _parse_once(folder: Path, workdir: Path) -> float:
    code = (
        "import json, time\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "t = time.perf_counter()\n"
        f"bag = DagBag(dag_folder={str(folder)!r})\n"
        "print(json.dumps({'s': time.perf_counter() - t, 'dags': len(bag.dags),"
        " 'errors': len(bag.import_errors)}))\n"
    )
    home = workdir.resolve() / "airflow-home"
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(folder),
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins")}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    parsed = json.loads(done.stdout.strip().splitlines()[-1])
    if parsed["errors"] or not parsed["dags"]:
        raise RuntimeError(f"DAG parse of {folder} failed: {parsed}\n{done.stderr[-2000:]}")
    return parsed["s"]


# -- parent ------------------------------------------------------------------------------------


def _child(*args: str) -> None:
    subprocess.run([sys.executable, __file__, *args], check=True)


def run_size(
    emulator: Any, workdir: Path, size: int, paces: list[str], scale: float, repeats: int
) -> list[dict[str, Any]]:
    """Generate the store of `size` once; run the window `repeats` times at each pace, each on
    a copy of it, and keep the median run (`median_run`)."""
    emulator.reset()
    targets = create_targets(emulator, org_config(size).n_customers)
    user_id = emulator.admin("GET", "info")["default_user_id"]
    targets_file = workdir / f"targets-{size}.json"
    targets_file.write_text(json.dumps(targets))
    store = workdir / f"store-{size}.db"
    began = time.perf_counter()
    _child("generate", str(size), str(store), str(targets_file), user_id)
    print(
        f"{size:>9,} messages: store generated in {time.perf_counter() - began:.1f} s", flush=True
    )
    import bench_report

    ready = str(workdir / "emulator" / "ready.json")
    results = []
    for pace in paces:
        out = workdir / f"result-{size}-{pace}.json"
        runs = [measure_once(workdir, store, size, pace, scale, ready, out)
                for _ in range(repeats)]  # fmt: skip
        result = bench_report.median_run(runs, bench_report.ratio, _brief)
        peer_out = workdir / f"peer-{size}-{pace}.json"
        csv_dir = workdir / f"csv-{size}-{pace}"
        _child("peer", str(size), pace, str(scale), ready, str(csv_dir), str(peer_out))
        result["peer"] = json.loads(peer_out.read_text())
        out.write_text(json.dumps(result, indent=1))
        print(bench_report.one_line(result), flush=True)
        results.append(result)
    emulator.set_pace("instant")
    return results


def measure_once(
    workdir: Path, store: Path, size: int, pace: str, scale: float, ready: str, out: Path
) -> dict[str, Any]:
    """One run of the window in a fresh child, on a fresh copy of the store."""
    from talklog_dev.demo_store import remove_store_files

    copy = workdir / f"store-{size}-{pace}.db"
    shutil.copyfile(store, copy)
    try:
        _child("measure", str(size), pace, str(scale), str(copy), ready, str(out))
    finally:
        remove_store_files(copy)  # with its log: none applies to the next run's copy
    return json.loads(out.read_text())


def _brief(run: dict[str, Any]) -> dict[str, float]:
    return {"client_s": run["client_s"], "limit_s": run["limit"]["seconds"],
            "task_cpu_s": run["task_cpu_s"], "reader_cpu_s": run["reader_cpu_s"]}  # fmt: skip


def measure_sizes(
    workdir: Path, sizes: list[int], paces: list[str], scale: float, repeats: int
) -> list[dict[str, Any]]:
    from talklog_dev.emulator.process import run_emulator

    with run_emulator(workdir / "emulator") as emulator:
        return [
            result
            for size in sizes
            for result in run_size(emulator, workdir, size, paces, scale, repeats)
        ]


def ingestion(
    workdir: Path, sizes: list[int], reuse: bool, repeats: int
) -> list[dict[str, Any]] | None:
    """`bench/ingest.py` at the same sizes (its kept results with `reuse`, when there are)."""
    import ingest as ingest_bench

    kept = workdir / "results.json"
    if reuse:
        return json.loads(kept.read_text()) if kept.exists() else None
    return ingest_bench.measure(sizes, workdir, repeats=repeats)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "generate":
        generate_store(int(argv[1]), Path(argv[2]), Path(argv[3]), argv[4])
        return
    if argv and argv[0] == "measure":
        size, pace, scale = int(argv[1]), argv[2], float(argv[3])
        measure(size, pace, scale, Path(argv[4]), Path(argv[5]), Path(argv[6]))
        return
    if argv and argv[0] == "peer":
        peer(int(argv[1]), argv[2], float(argv[3]), Path(argv[4]), Path(argv[5]), Path(argv[6]))
        return
    import bench_report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--paces", default=",".join(PACES))
    parser.add_argument("--time-scale", type=float, default=TIME_SCALE)
    parser.add_argument(
        "--repeats",
        type=int,
        default=bench_report.REPEATS,
        help="runs per size and pace (and ingestion size)",
    )
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / "var" / "bench")
    parser.add_argument("--docs", type=Path, default=REPO_ROOT / "docs")
    parser.add_argument("--no-docs", action="store_true", help="print only")
    parser.add_argument("--report-only", action="store_true", help="reuse result-N.json files")
    parser.add_argument("--no-ingest", action="store_true", help="leave out bench/ingest.py")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    sizes = [int(s) for s in args.sizes.split(",")]
    paces = args.paces.split(",")
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        results = [
            json.loads((args.workdir / f"result-{n}-{pace}.json").read_text())
            for n in sizes
            for pace in paces
        ]
    else:
        results = measure_sizes(args.workdir, sizes, paces, args.time_scale, args.repeats)
    ingest = (
        None
        if args.no_ingest
        else ingestion(args.workdir / "ingest", sizes, args.report_only, args.repeats)
    )
    parse = dag_parse_times(args.workdir)

    report = bench_report.Report(results, parse, ingest)
    print(report.markdown())
    if not args.no_docs:
        (args.docs / "performance.md").write_text(report.document(), encoding="utf-8")
        bench_report.plot(results, args.docs / "performance.png", ingest)


if __name__ == "__main__":
    main()
