"""Benchmark: LINE WORKS ingestion of one talk window, download + store, against the emulator.

    .venv/bin/python bench/ingest.py [--sizes 1000,100000,1000000] [--workdir var/bench-ingest]
        [--world small|scaled] [--repeats 3] [--profile]

For each size, `--repeats` times (the run of median ingestion time is kept, with every run's
times), in a fresh child process (so that peak memory is that size's alone): a world of
the generator with that many messages in ONE day, the LINE WORKS emulator serving it, a SQLite
store holding the world's people, rooms and links but no message, the directory synced
(`sync_directory`), then `ingest_talks` over the day: the Monitoring API download streamed to a
temporary file and checked, and its import into the store (parse, identity matching, message
keys, store writes). Timed: the emulator's own preparation of the file before its 302 (the
synthetic world rendered as CSV: the real server's work, shown and left out of the ingestion
time), the transfer (302, file over loopback TLS, the client's check of the file) and the
import; peak RSS of the ingesting process (`ru_maxrss`; the emulator runs in its own process).
Flat memory: the largest size's peak within 1.25x the next size's (the import's buffers are
bounded: one chunk of rows, the occurrence counts, SQLite's page cache; the smallest sizes do
not fill them). `--profile` writes a cProfile of the ingestion (`<workdir>/<size>.prof`) and
prints its top functions.

Targets (issue 20): 1,000,000 messages of one window ingested in at most 30 s, flat memory.
Not a test: never run by `make test`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import subprocess
import sys
import time
from operator import itemgetter
from pathlib import Path
from typing import Any

import bench_report  # bench/ is the script's folder, first on sys.path

REPO_ROOT = Path(__file__).resolve().parents[1]

SIZES = (1_000, 100_000, 1_000_000)
DAY = dt.date(2025, 1, 9)
TARGET_SECONDS = 30.0  # for 1,000,000 messages
TARGET_SIZE = 1_000_000
FLAT_MEMORY_SLACK = 1.25  # the largest size's peak within 1.25x the next size's


def world_config(messages: int, world: str = "small") -> Any:
    """`small`: the same 4 staff, 12 customers and 8 rooms at every size (no display name
    shared: nothing quarantined, the import's full path). `scaled`: rooms and people grow
    with the volume (about 500 messages per room and day); the generator's name pool is small,
    so most customers share a display name and their rows are quarantined (never guessed)."""
    from talklog_dev.synth.generator import GeneratorConfig

    rooms = 8 if world == "small" else max(8, min(2_000, messages // 500))
    return GeneratorConfig(
        seed=17, day=DAY, days=1, messages=messages, n_staff=max(4, rooms // 20),
        n_customers=max(12, rooms * 3 // 2), n_rooms=rooms,
    )  # fmt: skip


def emulator_args(config: Any) -> list[str]:
    return [
        "--seed", str(config.seed), "--day", config.day.isoformat(), "--days", str(config.days),
        "--messages", str(config.messages), "--staff", str(config.n_staff),
        "--customers", str(config.n_customers), "--rooms", str(config.n_rooms),
        "--rate-per-minute", "100000", "--file-url-lifetime", "3600",
    ]  # fmt: skip


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def store_without_messages(url: str, config: Any) -> None:
    """The world's people, rooms and links (the plan does not depend on the message count)."""
    import sqlalchemy as sa

    from talklog.store import make_session_factory
    from talklog.store.migrate import upgrade
    from talklog.store.models import Message
    from talklog_dev.synth.generator import generate

    upgrade(url)
    generate(url, config.replace(messages=1))
    with make_session_factory(url).begin() as session:
        session.execute(sa.delete(Message))


def client_of(handle: Any) -> Any:
    from talklog.lineworks import LineWorksClient
    from talklog.lineworks.auth import ServiceAccount

    account = ServiceAccount(
        handle.client_id,
        handle.client_secret,
        handle.service_account_id,
        handle.private_key(),
        tuple(handle.scopes.split()),
    )
    return LineWorksClient(
        handle.session(), account, base_url=handle.base_url, auth_url=handle.auth_url
    )


class TimedSource:
    """The client, with the time spent in downloads (rendering and transfer) measured."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.download_seconds = 0.0

    @property
    def api_calls(self) -> int:
        return self.client.api_calls

    def download_talks(self, *args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return self.client.download_talks(*args, **kwargs)
        finally:
            self.download_seconds += time.perf_counter() - began


def run_size(messages: int, workdir: Path, profile: bool, world: str) -> dict[str, Any]:
    """One size, in this (child) process: the figures as a dict."""
    from talklog.directory_sync import sync_directory
    from talklog.ingest import ingest_talks
    from talklog.store import make_session_factory
    from talklog_dev.lineworks_emulator.process import run_lineworks_emulator

    folder = workdir / str(messages)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    config = world_config(messages, world)
    url = f"sqlite:///{folder / 'store.db'}"
    store_without_messages(url, config)
    sessions = make_session_factory(url)
    start, end = config.window()
    with run_lineworks_emulator(folder / "lineworks", *emulator_args(config)) as handle:
        source = TimedSource(client_of(handle))
        sync_directory(sessions, source.client, domain_id=handle.domain_id)
        rss_before = peak_rss_mib()
        profiler = _profiler(profile)
        began = time.perf_counter()
        summary = ingest_talks(sessions, source, start, end, workdir=folder)
        wall = time.perf_counter() - began
        _dump(profiler, folder / f"{messages}.prof")
        prepare = handle.stats()["prepare_seconds"]
    return {
        "messages": messages,
        "talks_downloaded": summary.talks_downloaded,
        "messages_new": summary.messages_new,
        "quarantined": summary.quarantined,
        "wall_s": round(wall, 2),
        "prepare_s": round(prepare, 2),
        "client_s": round(wall - prepare, 2),
        "download_s": round(source.download_seconds - prepare, 2),
        "import_s": round(wall - source.download_seconds, 2),
        "rows_per_s": round(summary.talks_downloaded / (wall - prepare)) if wall else 0,
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "rss_before_mib": round(rss_before, 1),
    }


def _profiler(enabled: bool) -> Any:
    if not enabled:
        return None
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    return profiler


def _dump(profiler: Any, path: Path) -> None:
    if profiler is None:
        return
    import pstats

    profiler.disable()
    profiler.dump_stats(path)
    pstats.Stats(str(path), stream=sys.stderr).sort_stats("cumulative").print_stats(25)


def run_child(messages: int, workdir: Path, profile: bool, world: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", str(messages), "--workdir", str(workdir)]
    command += ["--world", world]
    done = subprocess.run(
        [*command, *(["--profile"] if profile else [])],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def targets(results: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(target, measured, PASS or the gap) for the ingestion targets."""
    largest = max(results, key=lambda r: r["messages"])
    seconds = largest["client_s"] * TARGET_SIZE / largest["messages"]
    scaled = "" if largest["messages"] == TARGET_SIZE else ", scaled to 1,000,000"
    measured = (
        f"{seconds:.1f} s (transfer {largest['download_s']:.1f} s + import"
        f" {largest['import_s']:.1f} s{scaled}; the emulator's {largest['prepare_s']:.1f} s"
        " of file preparation left out)"
    )
    measured += bench_report.every_run(largest, lambda run: f"{run['client_s']:.1f} s")
    late = f"gap: {seconds - TARGET_SECONDS:.1f} s over ({seconds / TARGET_SECONDS:.2f}x)"
    rows = [("ingesting 1M messages of one window <= 30 s", measured,
             "PASS" if seconds <= TARGET_SECONDS else late)]  # fmt: skip
    by_size = sorted(results, key=lambda r: r["messages"])
    if len(by_size) < 2:
        return [*rows, ("ingestion memory flat", "needs two sizes", "not measured")]
    before, last = by_size[-2], by_size[-1]
    ratio = last["peak_rss_mib"] / before["peak_rss_mib"]
    measured = (
        f"peak RSS {before['peak_rss_mib']:.0f} MiB at {before['messages']:,} messages,"
        f" {last['peak_rss_mib']:.0f} MiB at {last['messages']:,} ({ratio:.2f}x)"
    )
    grows = f"gap: grows {ratio:.2f}x (at most {FLAT_MEMORY_SLACK}x)"
    rows.append((f"ingestion memory flat (largest size within {FLAT_MEMORY_SLACK}x the next)",
                 measured, "PASS" if ratio <= FLAT_MEMORY_SLACK else grows))  # fmt: skip
    return rows


def measure(
    sizes: list[int],
    workdir: Path,
    profile: bool = False,
    world: str = "small",
    repeats: int = bench_report.REPEATS,
) -> list[dict[str, Any]]:
    """Every size `repeats` times, each in its own child process, the run of median
    ingestion time kept (`bench_report.median_run`); the results, also kept as
    `results.json`."""
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for size in sizes:
        runs = [run_child(size, workdir, profile, world) for _ in range(repeats)]
        results.append(bench_report.median_run(runs, itemgetter("client_s"), _brief))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    (workdir / "results.json").write_text(json.dumps(results, indent=1))
    return results


def _brief(run: dict[str, Any]) -> dict[str, float]:
    return {name: run[name] for name in ("client_s", "download_s", "import_s")}


def print_table(results: list[dict[str, Any]]) -> None:
    from tabulate import tabulate

    headers = {
        "messages": "messages", "talks_downloaded": "talks\ndownloaded",
        "messages_new": "stored", "quarantined": "quarantined",
        "prepare_s": "emulator\nprepares s", "download_s": "transfer\ns",
        "import_s": "import\ns", "client_s": "ingestion\ns", "rows_per_s": "rows/s",
        "peak_rss_mib": "peak RSS\nMiB",
    }  # fmt: skip
    rows = [[result[key] for key in headers] for result in results]
    print(tabulate(rows, headers=list(headers.values()), intfmt=",", floatfmt=".1f"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / "var" / "bench-ingest")
    parser.add_argument("--profile", action="store_true", help="cProfile the ingestion")
    parser.add_argument("--world", choices=["small", "scaled"], default="small")
    parser.add_argument("--repeats", type=int, default=bench_report.REPEATS,
                        help="runs per size, the median kept")  # fmt: skip
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_size(args.child, args.workdir, args.profile, args.world)))
        return
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    sizes = [int(s) for s in args.sizes.split(",")]
    results = measure(sizes, args.workdir, args.profile, args.world, args.repeats)
    print_table(results)
    for target, measured, result in targets(results):
        print(f"{target}: {measured}: {result}")


if __name__ == "__main__":
    main()
