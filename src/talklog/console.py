"""What the operator's console shows, without Airflow: talk windows, gaps, backfills, summaries.

A talk-log run with the data interval [start, end) writes the talk window [start - 24h,
end - 24h) (`talklog.windows`). The console turns that around for an operator who thinks in
talk days: which runs of a schedule write the talks of some days (`runs_for_talk_days`), the
data-interval range a backfill of those days needs (`BackfillPlan`), the table of talk windows
of a range with the runs that wrote them and the gaps (`window_table`), and a run's summary as
one line or as labelled rows (`one_line`, `summary_rows`, `advice`), whatever keys it holds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import pendulum
from croniter import croniter  # the cron library Airflow's timetables use

from talklog.windows import TALK_DELAY, TalkWindow, as_utc, talk_window, zone

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

# Labels of the summary keys the jobs return today; any other key is shown under its own name.
LABELS: dict[str, str] = {
    "window": "Window key",
    "window_label": "Talk window",
    "rooms": "Rooms",
    "messages": "Messages",
    "transcripts": "Transcripts",
    "talklogs": "TalkLogs",
    "tasks": "Tasks",
    "linkworks": "LINE WORKS records",
    "exchange_tasks": "Exchange Tasks",
    "by_object": "By object",
    "sent": "sent",
    "written": "written",
    "rejected": "Rejected",
    "rejected_by_code": "rejected by code",
    "dead_letters_retried": "dead letters retried",
    "resent_without_owner": "re-sent without owner",
    "pairs_owned_by_other_windows": "Pairs owned by other windows",
    "unresolved_targets": "Unresolved targets",
    "tasks_owned_by_integration_user": "Tasks owned by the integration user",
    "staff_without_active_user": "Staff without an active Salesforce user",
    "quarantined": "Quarantined rows",
    "deleted": "Deleted",
    "resent": "Re-sent",
    "api_calls": "API calls used",
    "since": "Since",
    "until": "Until",
    "links": "Links",
    "linked": "Linked",
    "unlinked": "Unlinked",
    "changed_customers": "Changed customers",
    "moved": "Moved",
    "daily_api_requests_remaining": "API calls left today",
    "daily_api_requests_max": "Daily API budget",
    "remaining_percent": "API budget left (%)",
}
# The loads of a summary (per-object `LoadOutcome.summary()` dicts) and how one line names them.
LOAD_NAMES: dict[str, str] = {
    "talklogs": "TalkLogs",
    "tasks": "Tasks",
    "linkworks": "LINE WORKS records",
    "exchange_tasks": "exchange Tasks",
}
# Keys of the one-line result, in this order, when present and not zero.
HEADLINE: tuple[str, ...] = ("messages", "rooms", "transcripts", "links", "changed_customers")
_QUIET = {"window", "window_label", "since", "until", "api_calls", "rejected"}


# -- schedules -----------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class ScheduledRun:
    """One run of a schedule: its data interval [start, end), in UTC, and the talks it writes."""

    start: dt.datetime
    end: dt.datetime

    @property
    def window(self) -> TalkWindow:
        return talk_window(self.start, self.end)


@dataclass(frozen=True)
class Schedule:
    """A cron in a time zone with data intervals, as Airflow's `CronDataIntervalTimetable`."""

    cron: str
    timezone: str

    def runs(self, first_start: dt.datetime, last_start: dt.datetime) -> Iterator[ScheduledRun]:
        """Runs whose data interval starts in [first_start, last_start] (aligned to the cron)."""
        current = self._align_next(as_utc(first_start))
        while current <= as_utc(last_start):
            following = self._next(current)
            yield ScheduledRun(current, following)
            current = following

    def covering(self, start: dt.datetime, end: dt.datetime) -> list[ScheduledRun]:
        """Runs whose talk window overlaps [start, end) of talk time."""
        first = self._prev(as_utc(start) + TALK_DELAY + dt.timedelta(microseconds=1))
        last = as_utc(end) + TALK_DELAY - dt.timedelta(microseconds=1)
        return [run for run in self.runs(first, last) if run.window.end > as_utc(start)]

    def _next(self, current: dt.datetime) -> dt.datetime:
        return self._step(current, forward=True)

    def _prev(self, current: dt.datetime) -> dt.datetime:
        return self._step(current, forward=False)

    def _align_next(self, current: dt.datetime) -> dt.datetime:
        following = self._next(current)
        return current if self._prev(following) == current else following

    def _step(self, current: dt.datetime, *, forward: bool) -> dt.datetime:
        """The cron's next (or previous) time, with Airflow's fix of repeated local hours."""
        local = zone(self.timezone)
        naive = current.astimezone(local).replace(tzinfo=None)
        cron = croniter(self.cron, start_time=naive)
        while True:
            scheduled = cron.get_next(dt.datetime) if forward else cron.get_prev(dt.datetime)
            if cron.expanded[1] == ["*"]:  # every hour: elapsed time decides (DST folds)
                return current + (scheduled - naive)
            # Not every hour: the wall time decides, the later of a repeated one (Airflow's
            # `make_aware`: fold=1, resolved by pendulum); a skipped one (01:00 on the day
            # London springs forward) is the instant after the gap, which `current` may
            # already be: then the step goes on to the cron time before (or after) it.
            moment = as_utc(pendulum.timezone(self.timezone).convert(scheduled.replace(fold=1)))
            if (moment > current) if forward else (moment < current):
                return moment


def day_span(first: dt.date, last: dt.date, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """Talk days [first, last] in `timezone` as a UTC span [first 00:00, day after last 00:00)."""
    if last < first:
        raise ValueError(f"the last talk day {last} is before the first {first}")
    local = zone(timezone)
    start = dt.datetime.combine(first, dt.time(), local)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), local)
    return as_utc(start), as_utc(end)


def runs_for_talk_days(schedule: Schedule, first: dt.date, last: dt.date) -> list[ScheduledRun]:
    """The runs of `schedule` that write talks of the days [first, last] (local, inclusive)."""
    return schedule.covering(*day_span(first, last, schedule.timezone))


# -- backfills -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackfillPlan:
    """A backfill of talk days: the runs it covers, which already ran and which are not due."""

    dag_id: str
    runs: tuple[ScheduledRun, ...]
    ran: frozenset[ScheduledRun] = frozenset()
    now: dt.datetime | None = None

    @property
    def from_date(self) -> dt.datetime:
        """Airflow's `from_date`: the first run's data interval start (its logical date)."""
        return self._runs()[0].start

    @property
    def to_date(self) -> dt.datetime:
        """Airflow's `to_date`: the last run's data interval start (inclusive)."""
        return self._runs()[-1].start

    def status(self, run: ScheduledRun) -> str:
        if run in self.ran:
            return "already ran"
        if self.now is not None and run.end > as_utc(self.now):
            return "not due yet"
        return "will run"

    def to_run(self) -> list[ScheduledRun]:
        return [run for run in self.runs if self.status(run) == "will run"]

    def lines(self, timezone: str) -> list[str]:
        """One line per window, then the range Airflow is asked for."""
        lines = [
            f"{run.window.label(timezone)}  run [{run.start:%Y-%m-%d %H:%M}, "
            f"{run.end:%Y-%m-%d %H:%M}) UTC  {self.status(run)}"
            for run in self.runs
        ]
        lines.append(
            f"{self.dag_id}: {len(self.to_run())} of {len(self.runs)} windows to run;"
            f" backfill from {self.from_date.isoformat()} to {self.to_date.isoformat()}"
        )
        return lines

    def request(self, reprocess: str = "none", max_active_runs: int = 1) -> dict[str, Any]:
        """The body of Airflow's `POST /api/v2/backfills`."""
        return {
            "dag_id": self.dag_id,
            "from_date": self.from_date.isoformat(),
            "to_date": self.to_date.isoformat(),
            "reprocess_behavior": reprocess,
            "max_active_runs": max_active_runs,
        }

    def _runs(self) -> tuple[ScheduledRun, ...]:
        if not self.runs:
            raise ValueError("no run of the schedule writes these talk days")
        return self.runs


def plan_backfill(
    dag_id: str,
    schedule: Schedule,
    first: dt.date,
    last: dt.date,
    existing: Iterable[RunRecord] = (),
    now: dt.datetime | None = None,
) -> BackfillPlan:
    """The backfill of talk days [first, last]; `existing`: runs the DAG already has."""
    runs = tuple(runs_for_talk_days(schedule, first, last))
    done = {ScheduledRun(as_utc(r.start), as_utc(r.end)) for r in existing if r.dag_id == dag_id}
    return BackfillPlan(dag_id, runs, frozenset(done & set(runs)), now)


# -- the talk windows table ----------------------------------------------------------------------


class RunState(StrEnum):
    SUCCESS = "success"
    FAILED = "failed"
    RUNNING = "running"
    QUEUED = "queued"


class WindowState(StrEnum):
    WRITTEN = "written"
    FAILED = "failed"
    RUNNING = "running"
    GAP = "gap"
    NOT_DUE = "not due"


@dataclass(frozen=True)
class RunRecord:
    """A DAG run as the console sees it: its data interval, state and returned summary."""

    dag_id: str
    run_id: str
    start: dt.datetime
    end: dt.datetime
    state: str
    summary: Mapping[str, Any] | None = None

    @property
    def window(self) -> TalkWindow:
        return talk_window(self.start, self.end)


@dataclass(frozen=True)
class WindowRow:
    """A talk window of the active schedule, the runs whose windows overlap it and its state."""

    window: TalkWindow
    runs: tuple[RunRecord, ...]
    state: WindowState
    counts: dict[str, int] = field(default_factory=dict)


def window_table(
    schedule: Schedule,
    start: dt.datetime,
    end: dt.datetime,
    runs: Sequence[RunRecord],
    now: dt.datetime,
) -> list[WindowRow]:
    """Every talk window of `schedule` overlapping [start, end), newest last, with its runs."""
    return [_row(run.window, runs, as_utc(now)) for run in schedule.covering(start, end)]


def _row(window: TalkWindow, runs: Sequence[RunRecord], now: dt.datetime) -> WindowRow:
    mine = tuple(
        sorted(
            (r for r in runs if r.window.start < window.end and window.start < r.window.end),
            key=lambda r: (r.start, r.run_id),
        )
    )
    return WindowRow(window, mine, _state(window, mine, now), _counts(mine))


def _state(window: TalkWindow, runs: Sequence[RunRecord], now: dt.datetime) -> WindowState:
    if _covered(window, [r.window for r in runs if r.state == RunState.SUCCESS]):
        return WindowState.WRITTEN
    if any(r.state in (RunState.RUNNING, RunState.QUEUED) for r in runs):
        return WindowState.RUNNING
    if any(r.state == RunState.FAILED for r in runs):
        return WindowState.FAILED
    if window.end + TALK_DELAY > now:
        return WindowState.NOT_DUE
    return WindowState.GAP


def _covered(window: TalkWindow, written: Sequence[TalkWindow]) -> bool:
    """True when the union of `written` windows covers `window` (e.g. hourly runs of a day)."""
    reached = window.start
    for other in sorted(written, key=lambda w: w.start):
        if other.start > reached:
            break
        reached = max(reached, other.end)
    return reached >= window.end


def _counts(runs: Sequence[RunRecord]) -> dict[str, int]:
    """Headline counts of the successful runs of a window, added up."""
    total: dict[str, int] = {}
    for run in runs:
        if run.state != RunState.SUCCESS or not run.summary:
            continue
        for key, value in headline_counts(run.summary).items():
            total[key] = total.get(key, 0) + value
    return total


# -- summaries -----------------------------------------------------------------------------------


def loads(summary: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The per-object load summaries in `summary` (top-level ones and `by_object`'s)."""
    found = {k: v for k, v in summary.items() if _is_load(v)}
    for name, value in (summary.get("by_object") or {}).items():
        if _is_load(value):
            found[name] = value
    return found


def _is_load(value: Any) -> bool:
    return isinstance(value, Mapping) and "written" in value and "sent" in value


def headline_counts(summary: Mapping[str, Any]) -> dict[str, int]:
    """Messages, transcripts, each object written, rejected: what a window row shows."""
    counts = {k: int(summary[k]) for k in HEADLINE if _is_count(summary.get(k))}
    for name, load in loads(summary).items():
        counts[f"{LOAD_NAMES.get(name, name)} written"] = int(load.get("written", 0))
    counts["rejected"] = _rejected(summary)
    return counts


def one_line(summary: Mapping[str, Any] | None) -> str:
    """A run's result in one line, for the runs list's note: every non-zero count named."""
    if not summary:
        return "no summary (the job did not return one)"
    parts = [f"{summary[k]} {_label(k).lower()}" for k in HEADLINE if summary.get(k)]
    written = [
        f"{int(v.get('written', 0))} {LOAD_NAMES.get(n, n)}" for n, v in loads(summary).items()
    ]
    if written:
        parts.append(", ".join(written) + " written")
    rejected = _rejected(summary)
    if rejected:
        codes = _rejected_by_code(summary)
        detail = ", ".join(f"{code} {n}" for code, n in sorted(codes.items()))
        parts.append(f"{rejected} rejected" + (f" ({detail})" if detail else ""))
    parts.extend(_other_counts(summary))
    if summary.get("api_calls") is not None:
        parts.append(f"{summary['api_calls']} API calls")
    return "; ".join(parts) or "nothing to do"


def _other_counts(summary: Mapping[str, Any]) -> list[str]:
    """Non-zero counts the headline does not name (new keys included), as `label n`."""
    known = set(HEADLINE) | _QUIET | set(loads(summary)) | {"by_object"}
    parts = []
    for key, value in summary.items():
        if key in known:
            continue
        total = _total(value)
        if total:
            parts.append(f"{_label(key).lower()} {total}")
    return parts


def summary_rows(summary: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Every key of `summary` as (label, value) rows; nested mappings flattened with `›`."""
    rows: list[tuple[str, str]] = []
    for key, value in summary.items():
        label = f"{prefix}{_label(key)}"
        if isinstance(value, Mapping) and value:
            rows.extend(summary_rows(value, prefix=f"{label} › "))
        else:
            rows.append((label, _text(value)))
    return rows


def advice(summary: Mapping[str, Any]) -> list[str]:
    """What to do about what is red in a summary (empty when nothing is)."""
    hints: list[str] = []
    rejected = _rejected(summary)
    if rejected:
        hints.append(
            f"Salesforce rejected {rejected} rows (kept as dead letters): retryable ones ride"
            " along with the next runs; fix the cause of the others (see their error codes on"
            " the Talk logs page), then press Replay."
        )
    if _total(summary.get("quarantined")):
        hints.append(
            "Rows were quarantined (unreadable or unplaceable): list them with the store's"
            " quarantine table, fix the source, re-import or re-run the window."
        )
    if _total(summary.get("unresolved_targets")):
        hints.append(
            "Some customers have no Salesforce record to write to: check their links and the"
            " external contacts; the next run writes them once resolved."
        )
    if _total(summary.get("staff_without_active_user")):
        hints.append(
            "Some staff have no active Salesforce user: their Tasks are owned by the"
            " integration user until one is set."
        )
    return hints


def _rejected(summary: Mapping[str, Any]) -> int:
    if _is_count(summary.get("rejected")):
        return int(summary["rejected"])
    return sum(int(load.get("rejected", 0)) for load in loads(summary).values())


def _rejected_by_code(summary: Mapping[str, Any]) -> dict[str, int]:
    codes: dict[str, int] = {}
    for load in loads(summary).values():
        for code, count in (load.get("rejected_by_code") or {}).items():
            codes[code] = codes.get(code, 0) + int(count)
    return codes


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _total(value: Any) -> int:
    """A count, or the sum of the counts (or list lengths) of a mapping; 0 for anything else."""
    if _is_count(value):
        return int(value)
    if isinstance(value, Mapping):
        return sum(_total(v) if not isinstance(v, list) else len(v) for v in value.values())
    if isinstance(value, list):
        return len(value)
    return 0


def _label(key: str) -> str:
    """The label of a summary key; an unknown snake_case key humanised, others (error codes,
    object names) as they are."""
    if key in LABELS:
        return LABELS[key]
    return key.replace("_", " ").capitalize() if key.islower() else key


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "—"
    if isinstance(value, Mapping):
        return "—"
    return str(value)


# -- lookups -------------------------------------------------------------------------------------


def trace_any(session: Session, key: str) -> list[str]:
    """Where `key` went, or why not: a message key, a `TalkLogKey__c`/`LineWorksKey__c`/
    `LinkKey__c` value, or a LINE WORKS contact (LINE user id or contact UUID) whose links are
    traced one by one. Never message content (`talklog.trace`)."""
    import sqlalchemy as sa

    from talklog.store.models import LineUser, Link, Message
    from talklog.trace import trace_message, trace_record

    if session.scalar(sa.select(Message.id).where(Message.message_key == key)) is not None:
        return trace_message(session, key)
    contact = session.scalar(
        sa.select(LineUser).where(sa.or_(LineUser.id == key, LineUser.contact_uuid == key))
    )
    if contact is None:
        return trace_record(session, key)
    links = session.scalars(
        sa.select(Link.link_key).where(Link.line_user_id == contact.id).order_by(Link.link_key)
    ).all()
    lines = [f"LINE WORKS contact {key!r}: {len(links)} links"]
    for link_key in links:
        lines.extend(f"  {line}" for line in trace_record(session, link_key))
    return lines
