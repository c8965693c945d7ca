"""Fault injection and API usage accounting: what a run can switch on, and what it has used."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any

DEFAULT_DAILY_API_LIMIT = 100_000


@dataclass
class Faults:
    """The faults of the current run (``PUT /__emulator__/faults``, ``--fault`` at start)."""

    lock_failure_rate: float = 0.0
    """Fraction of Bulk ingest rows that fail with UNABLE_TO_LOCK_ROW."""
    lock_seed: int = 0
    """Seed that makes the choice of locked rows repeatable."""
    http_5xx_status: int = 503
    http_5xx_count: int = 0
    """The next N API calls answer with ``http_5xx_status``."""
    http_5xx_rate: float = 0.0
    """Fraction of API calls that answer with ``http_5xx_status`` (seeded by ``lock_seed``)."""
    session_expire_after_calls: int | None = None
    """A session expires (401 INVALID_SESSION_ID) after this many API calls."""
    daily_api_budget: int | None = None
    """Daily API request limit; beyond it every call gets 403 REQUEST_LIMIT_EXCEEDED."""
    bulk_polls_in_progress: int = 1
    """Job info polls that still see InProgress before a Bulk job completes (slow jobs)."""
    bulk_queue_s: float | None = None
    """Paced ingest jobs (``--bulk-pace``, `talklog_dev.emulator.bulk.BulkPace`): emulated
    seconds a closed job waits in the queue before it is processed; None: every job is done
    at its first look."""
    bulk_seconds_per_chunk: float = 1.0
    """Paced jobs: emulated seconds per chunk of 200 records of a 10,000-record batch."""
    bulk_seconds_per_mib: float = 0.5
    """Paced jobs: emulated seconds per MiB of a batch's data."""
    bulk_parallel_batches: int = 5
    """Paced jobs: batches of one job processed at once."""
    time_scale: float = 1.0
    """Emulated seconds per wall-clock second for paced jobs (100: a 30 s job takes 0.3 s)."""
    person_accounts: bool = True
    """Off: an org without Person Accounts (most B2B orgs). ``Account.IsPersonAccount``,
    ``PersonContactId`` and ``Contact.IsPersonAccount`` are gone from describe, SOQL refuses
    them with INVALID_FIELD and no Account becomes a person account."""
    validation_rules: list[dict[str, Any]] = field(default_factory=list)
    """The org's validation rules (``talklog_dev.emulator.validation``): a row that meets an
    active rule's condition fails with FIELD_CUSTOM_VALIDATION_EXCEPTION and its message."""

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial update; unknown names raise ``KeyError``."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise KeyError(", ".join(sorted(unknown)))
        for name, value in changes.items():
            setattr(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_fault_option(text: str) -> dict[str, Any]:
    """``name=value`` from the command line, with the value typed like the field."""
    name, sep, raw = text.partition("=")
    if not sep:
        raise ValueError(f"--fault expects name=value, got {text!r}")
    types = {f.name: f.type for f in fields(Faults)}
    if name not in types:
        raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(types))}")
    kind = str(types[name])
    if raw.lower() in ("none", "null", ""):
        return {name: None}
    if kind.startswith("list"):
        return {name: json.loads(raw)}
    if kind == "bool":
        return {name: raw.lower() in ("1", "true", "yes", "on")}
    value: Any = float(raw) if "float" in kind else int(raw)
    return {name: value}


@dataclass
class Usage:
    """API calls counted per endpoint, and the daily total that ``/limits`` reports."""

    daily_limit: int = DEFAULT_DAILY_API_LIMIT
    calls: Counter[str] = field(default_factory=Counter)
    daily_used: int = 0

    def count(self, endpoint: str) -> None:
        self.calls[endpoint] += 1
        self.daily_used += 1

    def limit(self, faults: Faults) -> int:
        return faults.daily_api_budget if faults.daily_api_budget is not None else self.daily_limit

    def header(self, faults: Faults) -> str:
        return f"api-usage={self.daily_used}/{self.limit(faults)}"

    def reset(self) -> None:
        self.calls.clear()
        self.daily_used = 0

    def as_dict(self, faults: Faults) -> dict[str, Any]:
        return {
            "api_calls": dict(sorted(self.calls.items())),
            "total_api_calls": sum(self.calls.values()),
            "daily_api_requests": {"used": self.daily_used, "max": self.limit(faults)},
        }


class FaultDice:
    """Seeded random choices for rate-based faults."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)

    def reseed(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def roll(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate
