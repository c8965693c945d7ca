"""What a job did, in one shape: a typed summary with `rejected`, `api_calls` and `as_dict()`.

Every Salesforce job (talk logs, link sync, re-link, replay) returns a `JobSummary` subclass;
its `as_dict()` is the task's return value (XCom) in the Airflow UI. Per-object counts are
`LoadOutcome.summary()` dicts (sent, resent, written, deleted, rejected, rejected_by_code,
dead_letters_retried).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(kw_only=True)
class JobSummary:
    """Base of the jobs' summaries: their fields, `rejected` and `api_calls`, JSON-able."""

    api_calls: int | None = None  # Salesforce API calls of the run (None: not counted)

    def loads(self) -> Iterable[Mapping[str, Any]]:
        """The `LoadOutcome.summary()` of every object this job loaded."""
        return ()

    @property
    def rejected(self) -> int:
        """Rows Salesforce rejected in this run (kept as dead letters)."""
        return sum(int(load.get("rejected", 0)) for load in self.loads())

    def as_dict(self) -> dict[str, Any]:
        fields = asdict(self)
        api_calls = fields.pop("api_calls")
        return {**fields, "rejected": self.rejected, "api_calls": api_calls}
