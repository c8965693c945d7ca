"""Tables, targets and the plot of `bench/pipeline.py` results (one dict per window size)."""

from __future__ import annotations

import datetime as dt
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 2**20
GIB = 2**30
MAX_CALLS = {(1_000, "30s"): 12, (1_000_000, "120s"): 24}  # issue 20's targets
MAX_LIMIT_RATIO = 3.0
REPEATS = 3  # runs of each size (and pace): the machine's speed moves between runs
MAX_PARSE_S = 0.5
JOBS = "/services/data/v{version}/jobs/ingest"
ENDPOINTS = {  # the emulator's counter names -> columns
    f"POST {JOBS}": "create",
    f"PUT {JOBS}/{{job_id}}/batches": "upload",
    f"PATCH {JOBS}/{{job_id}}": "close",
    f"GET {JOBS}": "list",
    f"GET {JOBS}/{{job_id}}": "info",
    f"GET {JOBS}/{{job_id}}/{{kind}}": "results",
}
COLUMNS = ("create", "upload", "close", "list", "info", "results")
STAGE_ORDER = (
    "extract: rooms, members, links",
    "extract: place customers (SOQL)",
    "extract: messages",
    "ledger: claims",
    "transform: recipients",
    "transform: lines rendered, screened",
    "transform: drafts",
    "transform: transcripts, rows",
    "transform: spool",
    "load: CSV build",
    "load: Bulk submit TalkLog__c",
    "load: Bulk submit Task",
    "load: Bulk looks (sleeps included)",
    "load: Bulk outcome TalkLog__c",
    "load: Bulk outcome Task",
    "ledger: mark delivered",
)


def bulk_calls(result: dict[str, Any]) -> dict[str, int]:
    """Bulk ingest calls of a run by column (create, upload, ...), as the emulator counted."""
    counts = dict.fromkeys(COLUMNS, 0)
    for name, n in result.get("endpoints", {}).items():
        if name in ENDPOINTS:
            counts[ENDPOINTS[name]] += n
    return counts


def total_bulk(result: dict[str, Any]) -> int:
    return sum(bulk_calls(result).values())


def one_line(result: dict[str, Any]) -> str:
    peer, limit = result.get("peer", {}), result["limit"]
    return (
        f"{result['size']:>9,} messages, {result['pace']:>7} jobs:"
        f" client {result['client_s']:.1f} s"
        f" (wall {result['wall_s']:.1f} s, emulator {result['emulator_work_s']:.1f} s, sleeps"
        f" {result['slept_s']:.1f} s), limit {limit['seconds']:.1f} s,"
        f" {total_bulk(result)} Bulk calls, task {_mib(result['task_peak_rss'])} + reader"
        f" {_mib(result['reader_peak_rss'])}; simple-salesforce {peer.get('api_calls', 0)} calls,"
        f" {peer.get('client_s', 0):.1f} s, {_mib(peer.get('peak_rss', 0))}" + _ratios(result)
    )


def median_run(
    runs: list[dict[str, Any]],
    key: Callable[[dict[str, Any]], float],
    brief: Callable[[dict[str, Any]], dict[str, float]],
) -> dict[str, Any]:
    """The run with the median `key` (the lower middle of an even count), holding every
    run's `brief` in `runs`: one run alone can be a third off on a shared machine."""
    ranked = sorted(runs, key=key)
    kept = dict(ranked[(len(ranked) - 1) // 2])
    kept["runs"] = [brief(run) for run in runs]
    return kept


def ratio(result: dict[str, Any]) -> float:
    """Client time / the limit of the run reported."""
    return result["client_s"] / result["limit"]["seconds"]


def every_run(result: dict[str, Any], shown: Callable[[dict[str, Any]], str]) -> str:
    """`; median of N runs: ...` (each run's `brief` as `shown`), when it ran more than once."""
    runs = result.get("runs", [])
    if len(runs) < 2:
        return ""
    return f"; median of {len(runs)} runs: {', '.join(map(shown, runs))}"


def _ratios(result: dict[str, Any]) -> str:
    return every_run(result, lambda run: f"{run['client_s'] / run['limit_s']:.2f}x")


def _cpu(result: dict[str, Any]) -> str:
    """CPU seconds of the task and of its reader process (results from before they were
    recorded: a dash)."""
    if "task_cpu_s" not in result:
        return "–"
    return f"{result['task_cpu_s']:.1f} + {result['reader_cpu_s']:.1f} s"


def _mib(value: float) -> str:
    return f"{value / MIB:,.0f} MiB"


def _n(value: int) -> str:
    return f"{value:,}"


def _s(seconds: float) -> str:
    """Seconds with two decimals below 10 s, one above."""
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def _peak(result: dict[str, Any]) -> int:
    return result["task_peak_rss"] + result["reader_peak_rss"]


@dataclass
class Report:
    results: list[dict[str, Any]]
    parse: dict[str, float]
    ingest: list[dict[str, Any]] | None = None  # `bench/ingest.py`'s results, when it ran

    def _at(self, size: int, pace: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.results if r["size"] == size and pace in (None, r["pace"])]

    def targets(self) -> list[tuple[str, str, str]]:
        """(target, measured, PASS or the gap)."""
        rows = []
        for (size, pace), most in MAX_CALLS.items():
            for result in self._at(size, pace):
                calls = total_bulk(result)
                verdict = "PASS" if calls <= most else f"gap: {calls - most} calls over"
                rows.append((f"Bulk calls for TalkLog + Task, {size:,} messages, {pace} jobs"
                             f" <= {most}", str(calls), verdict))  # fmt: skip
        largest = max(r["size"] for r in self.results)
        for result in self._at(largest):
            times = ratio(result)
            verdict = "PASS" if times <= MAX_LIMIT_RATIO else f"gap: {times / 3:.2f}x too slow"
            limit = result["limit"]["seconds"]
            measured = f"{times:.2f}x ({result['client_s']:.1f} s / {limit:.1f} s)"
            measured += _ratios(result)
            rows.append((f"client time <= 3x the limit, {largest:,} messages, {result['pace']}"
                         " jobs", measured, verdict))  # fmt: skip
        peak = max(_peak(r) for r in self._at(largest))
        over = f"gap: {_mib(peak - GIB)} over"
        rows.append((f"peak memory (task + reader) < 1 GiB, {largest:,} messages", _mib(peak),
                     "PASS" if peak < GIB else over))  # fmt: skip
        parse, empty = self.parse["project"], self.parse["empty"]
        late = f"gap: {parse - MAX_PARSE_S:.2f} s over"
        measured = f"{parse:.2f} s (empty DAG file {empty:.2f} s)"
        rows.append(("parse all DAG files < 0.5 s", measured,
                     "PASS" if parse < MAX_PARSE_S else late))  # fmt: skip
        if self.ingest:
            import ingest as ingest_bench

            rows += ingest_bench.targets(self.ingest)
        else:
            rows.append(("ingesting 1M messages of one window <= 30 s, flat memory",
                         "not run (--no-ingest, or --report-only without kept results)",
                         "not measured"))  # fmt: skip
        return rows

    def markdown(self) -> str:
        parts = [self._summary_table(), self._calls_table(), self._peer_table()]
        parts += [self._stage_table(), self._rest_table(), self._ingest_table()]
        parts.append(self._target_table())
        return "\n\n".join(part for part in parts if part)

    def _summary_table(self) -> str:
        lines = [
            "| messages | jobs | TalkLogs + Tasks | CSV (files) | client time | emulator work |"
            " sleeps | limit: SELECT + write + TLS | client / limit | CPU: task + reader |"
            " peak: task + reader |",
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in self.results:
            s, limit = r["summary"], r["limit"]
            lines.append(
                f"| {_n(r['size'])} | {r['pace']} | {_n(s['talklogs'].get('sent', 0))} + "
                f"{_n(s['tasks'].get('sent', 0))} | {_mib(r['csv_bytes'])} ({r['csv_files']}) |"
                f" {_s(r['client_s'])} | {_s(r['emulator_work_s'])} | {_s(r['slept_s'])}"
                f" ({r['slept_s'] * r['time_scale']:,.0f} s emulated) |"
                f" {limit['select_s']:.2f} + {limit['write_s']:.2f} + {limit['send_s']:.2f} ="
                f" {_s(limit['seconds'])} | {ratio(r):.2f}x |"
                f" {_cpu(r)} | {_mib(r['task_peak_rss'])} + {_mib(r['reader_peak_rss'])} |"
            )
        return "\n".join(lines)

    def _calls_table(self) -> str:
        lines = [
            "| messages | jobs | " + " | ".join(COLUMNS) + " | Bulk total | SOQL + describe |",
            "| ---: | --- |" + " ---: |" * (len(COLUMNS) + 2),
        ]
        for r in self.results:
            calls = bulk_calls(r)
            other = sum(r.get("endpoints", {}).values()) - sum(calls.values())
            cells = " | ".join(str(calls[c]) for c in COLUMNS)
            lines.append(f"| {_n(r['size'])} | {r['pace']} | {cells} | {sum(calls.values())} |"
                         f" {other} |")  # fmt: skip
        return "\n".join(lines)

    def _ingest_table(self) -> str:
        """LINE WORKS ingestion of one window (`bench/ingest.py`), one row per size."""
        if not self.ingest:
            return ""
        lines = [
            "| messages (ingestion) | talks downloaded | stored | quarantined | emulator prepares"
            " (left out) | transfer | import | ingestion | rows/s | peak RSS |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in self.ingest:
            lines.append(
                f"| {_n(r['messages'])} | {_n(r['talks_downloaded'])} | {_n(r['messages_new'])} |"
                f" {_n(r['quarantined'])} | {_s(r['prepare_s'])} | {_s(r['download_s'])} |"
                f" {_s(r['import_s'])} | {_s(r['client_s'])} | {_n(r['rows_per_s'])} |"
                f" {r['peak_rss_mib']:,.0f} MiB |"
            )
        return "\n".join(lines)

    def _peer_table(self) -> str:
        lines = [
            "| messages | jobs | project: Bulk calls / client time / peak (task + reader) |"
            " simple-salesforce bulk2 upsert: jobs / calls / client time / peak |",
            "| ---: | --- | ---: | ---: |",
        ]
        for r in self.results:
            peer = r.get("peer")
            if not peer:
                continue
            lines.append(
                f"| {_n(r['size'])} | {r['pace']} | {total_bulk(r)} / {_s(r['client_s'])} /"
                f" {_mib(_peak(r))} | {peer['jobs']} / {peer['api_calls']} /"
                f" {_s(peer['client_s'])} / {_mib(peer['peak_rss'])} |"
            )
        return "\n".join(lines)

    def _stage_table(self) -> str:
        results = [r for r in self.results if r["pace"] == "instant"] or self.results
        sizes = [r["size"] for r in results]
        lines = [
            "| stage (instant jobs) | "
            + " | ".join(f"{_n(s)}: time / peak RSS / rows" for s in sizes) + " |",
            "| --- |" + " ---: |" * len(sizes),
        ]  # fmt: skip
        names = [n for n in STAGE_ORDER if any(n in r["stages"] for r in results)]
        names += sorted({n for r in results for n in r["stages"]} - set(names))
        for name in names:
            cells = []
            for r in results:
                st = r["stages"].get(name)
                cells.append(f"{st['seconds']:.2f} s / {_mib(st['peak_rss'])} / {_n(st['rows'])}"
                             if st else "-")  # fmt: skip
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def _rest_table(self) -> str:
        rows = [r for r in self.results if r.get("rest")]
        if not rows:
            return ""
        lines = [
            "| messages | REST per record: calls / time | REST / pipeline (calls) |",
            "| ---: | ---: | ---: |",
        ]
        for r in rows:
            rest = r["rest"]
            note = " (extrapolated)" if rest["extrapolated"] else ""
            lines.append(
                f"| {_n(r['size'])} | {_n(rest['api_calls'])} / {rest['seconds']:.1f} s{note} |"
                f" {rest['api_calls'] / max(1, total_bulk(r)):,.0f}x |"
            )
        return "\n".join(lines)

    def _target_table(self) -> str:
        lines = ["| target | measured | result |", "| --- | --- | --- |"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in self.targets()]
        return "\n".join(lines)

    def document(self) -> str:
        repeats = max(len(result.get("runs", [None])) for result in self.results)
        return HEADER.format(
            date=dt.date.today().isoformat(), machine=platform.platform(),
            python=platform.python_version(), repeats=repeats,
        ) + self.markdown() + "\n" + FOOTER.format(repeats=repeats)  # fmt: skip


HEADER = """# Performance

Measured by `bench/pipeline.py` on {date} ({machine}, Python {python}, 2 cores), against the
local Salesforce emulator (`talklog_dev.emulator`, HTTPS on 127.0.0.1, one process). Each size is
one talk window of generated talk (`talklog_dev.synth`: ~250 messages per room and day, 30% group
rooms, 0.2% long messages of 2,000-10,000 characters, 10,000 being LINE's limit per message)
whose links point at records created in the emulator, run {repeats} times (`--repeats`) at each
pace of the emulator's Bulk jobs; the tables show each size and pace's median run. Regenerate
with `.venv/bin/python bench/pipeline.py` (`--sizes`, `--paces`, `--time-scale`, `--repeats`;
`--report-only` rewrites this page from the last results).

![time and memory against message count](performance.png)

"""

FOOTER = """
How to read it:

- **jobs** is the emulator's pace (`--bulk-pace`, `talklog_dev.emulator.bulk.BulkPace`):
  `instant` jobs are done at the first look; `30s` and `120s` jobs wait 28 s or 60 s in the
  queue, then take 1 s per 200-record chunk and 0.5 s per MiB of each 10,000-record batch (5
  batches at once): a 1,000-message window's job takes about 29 s at `30s`, a 1M window's
  100 MB job about 125 s at `120s`. Salesforce documents the batches and chunks, not the
  rates: those are assumptions. The runs are scaled down 100 times (`--time-scale`): the
  emulator's clock and the client's (`ScaledTime`: its sleeps and its timeout clock) run at
  that scale, so the client makes the calls it would make against an org that takes that long.
- **Bulk calls** are the TalkLog and Task loads' Bulk API 2.0 calls as the emulator counted
  them by endpoint: create (`POST jobs/ingest`), upload (`PUT …/batches`), close (`PATCH`),
  list (`GET jobs/ingest`: every open job's state in one call per round), info (`GET` of one
  job: its counts, once per job at the end, or a round's look when one job is left), results
  (failed or unprocessed rows, only when a job's counts say it has some; successful results
  are never read). SOQL and the describe of a run are counted apart.
- **client time** is the wall time of `write_talk_logs` (the link sync before it is left out)
  less the emulator's own work on job data (`bulk_work_seconds` of its stats: parsing the
  uploads and writing records, measured inside the emulator) and less the client's sleeps
  between looks (wall seconds; the emulated seconds they stand for in brackets). It still
  holds the emulator's HTTP and TLS handling of every call and its SOQL answers.
- **limit** is the work itself, measured in the same child process right after the run: the
  window's messages read into tuples by a plain `SELECT` (sqlite3, 20,000 rows a fetch), the
  final CSVs' bytes (those the pipeline uploaded) written to a temporary file, and the same
  bytes sent over loopback TLS (the emulator's certificate) to a process that reads and drops
  them, one after the other.
- **CPU** is the user + system seconds of the process that ran the window and of its message
  reader process, during `write_talk_logs`: on two cores the window cannot take less wall time
  than about half their sum, and they say how much work there was when the machine's speed
  moves between runs.
- **peak** memory: the task is `ru_maxrss` of the process that ran the window (the link sync
  included), the reader that of its child processes (the message reader, from 250,000
  messages): added, as if both peaked at once. The emulator's memory is not counted.
- **simple-salesforce** (the peer): `sf.bulk2.<object>.upsert(csv_file=…)` of simple-salesforce
  1.12 on each CSV file the pipeline uploaded, one file after the other in its own process
  (it splits files itself, polls each job on its own: 5 s, then 5 s plus e^n ms, at the same
  time scale), against the same emulator at the same pace; the same keys again, so updates.
  Its client time leaves out the emulator's work and its sleeps as the project's does; it
  starts from CSV files the project built (the project's time includes building them).
- REST per record (instant pace only): the same rows upserted one `PATCH sobjects/X/ExtId/value`
  each (as new records); beyond the sample (300 per object) its time is extrapolated, its calls
  are one per row.
- Stage times (instant pace) are exclusive wall time; a stage's peak RSS is the highest resident
  memory of the task process sampled while it ran (every 5 ms). "load: Bulk looks" includes the
  sleeps between looks. "transform: lines rendered, screened" is the rendering of the lines
  the reader process did not render (`UnreadableRows.screen`); what the reader renders is done
  on its own core and not in these times.
- DAG parse: `DagBag` of `dags/` in a fresh process (median of 3), against a file with one empty
  DAG.
- The machine is shared: absolute times vary by up to a third between runs, ratios less. So
  each size and pace runs {repeats} times (`--repeats`), each on a fresh copy of the store, and
  the tables show the run with the median client / limit ratio; the target line lists every
  run's ratio. (Runs after the first update the records the first created; the emulator's
  work on them is left out as always.)
- Ingestion (`bench/ingest.py`, run by the benchmark after the windows): for each size, in a
  fresh process, a world of that many messages in one day served by the LINE WORKS emulator
  (4 staff, 12 customers, 8 rooms at every size: nothing quarantined, the import's whole path),
  a store with the world's people, rooms and links but no message, the directory synced, then
  `ingest_talks` over the day: the Monitoring API download streamed to a file over loopback TLS
  and checked (transfer), and its import (CSV parse, identity matching, message keys, store
  writes). The emulator's own rendering of the file before its 302 is shown and left out.
  Peak RSS is the ingesting process's `ru_maxrss`; flat means the largest size's peak within
  1.25x the next size's. Each size runs {repeats} times; the run of median ingestion time is
  shown, and the target line lists every run's time.
"""


def _plot_ingest(left: Any, right: Any, ingest: list[dict[str, Any]] | None) -> None:
    if not ingest:
        return
    sizes = [r["messages"] for r in ingest]
    left.plot(sizes, [r["client_s"] for r in ingest], "D-.", label="ingestion (LINE WORKS)")
    right.plot(sizes, [r["peak_rss_mib"] for r in ingest], "D-.", label="ingestion")


def plot(
    results: list[dict[str, Any]], path: Path, ingest: list[dict[str, Any]] | None = None
) -> None:
    """Client time per pace, the limit, the peer and the ingestion against message count;
    peak memory."""
    try:
        import matplotlib
    except ImportError:
        print(f"matplotlib is not installed: {path} not written (see docs/performance.md)")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    paces = list(dict.fromkeys(r["pace"] for r in results))
    for pace in paces:
        rows = [r for r in results if r["pace"] == pace]
        sizes = [r["size"] for r in rows]
        left.plot(sizes, [r["client_s"] for r in rows], "o-", label=f"client time, {pace} jobs")
        right.plot(sizes, [_peak(r) / MIB for r in rows], "o-", label=f"task + reader, {pace}")
    first = [r for r in results if r["pace"] == paces[0]]
    sizes = [r["size"] for r in first]
    left.plot(sizes, [r["limit"]["seconds"] for r in first], "s--", label="limit")
    if all(r.get("peer") for r in first):
        left.plot(sizes, [r["peer"]["client_s"] for r in first], "^:",
                  label=f"simple-salesforce, {paces[0]}")  # fmt: skip
        right.plot(sizes, [r["peer"]["peak_rss"] / MIB for r in first], "^:",
                   label="simple-salesforce")  # fmt: skip
    _plot_ingest(left, right, ingest)
    left.set(xscale="log", yscale="log", xlabel="messages in the window", ylabel="seconds",
             title="time (emulator work and sleeps left out)")  # fmt: skip
    right.axhline(GIB / MIB, color="red", linestyle=":", label="1 GiB target")
    right.set(xscale="log", yscale="log", xlabel="messages in the window", ylabel="MiB",
              title="peak memory")  # fmt: skip
    for axes in (left, right):
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
