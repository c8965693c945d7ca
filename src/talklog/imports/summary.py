"""What an import did: every row read is inserted, a duplicate or rejected (with its lines).

Nothing here holds file content: rejections carry line numbers, a reason code and a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_LISTED_REJECTIONS = 1_000  # the count is always complete; the list stops here


@dataclass(frozen=True, slots=True)
class Rejection:
    """A row that was not imported, with its physical line span and why (never its content)."""

    line: int
    reason: str
    end_line: int | None = None
    code: str = "unreadable"  # the quarantine's reason code

    def as_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {"line": self.line, "reason": self.reason, "code": self.code}
        if self.end_line and self.end_line != self.line:
            row["end_line"] = self.end_line
        return row


@dataclass
class ImportSummary:
    """What an import did; every row read is inserted, a duplicate or rejected."""

    file: str
    timezone: str
    rows_read: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    rooms_created: int = 0
    lw_users_created: int = 0
    line_users_created: int = 0
    download_error: bool = False
    warnings: list[str] = field(default_factory=list)
    quarantined: int = 0  # rejected rows kept in the quarantine table

    @property
    def rejected(self) -> int:
        return len(self.rejections)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able summary (no message text)."""
        return {
            "file": self.file,
            "timezone": self.timezone,
            "rows_read": self.rows_read,
            "inserted": self.inserted,
            "duplicates_skipped": self.duplicates,
            "rejected": self.rejected,
            "rejected_rows": [r.as_dict() for r in self.rejections[:MAX_LISTED_REJECTIONS]],
            "quarantined": self.quarantined,
            "rooms_created": self.rooms_created,
            "lw_users_created": self.lw_users_created,
            "line_users_created": self.line_users_created,
            "download_error": self.download_error,
            "warnings": list(self.warnings),
        }

    def render(self) -> str:
        """A few lines for a terminal."""
        lines = [
            f"{self.file}: {self.rows_read:,} rows read, {self.inserted:,} inserted,"
            f" {self.duplicates:,} duplicates skipped, {self.rejected:,} rejected",
            f"created {self.rooms_created:,} rooms, {self.lw_users_created:,} LW users,"
            f" {self.line_users_created:,} LINE users (times read as {self.timezone})",
        ]
        for rejection in self.rejections[:MAX_LISTED_REJECTIONS]:
            span = f"-{rejection.end_line}" if rejection.as_dict().get("end_line") else ""
            lines.append(f"  rejected line {rejection.line}{span}: {rejection.reason}")
        if self.rejected > MAX_LISTED_REJECTIONS:
            lines.append(f"  ... and {self.rejected - MAX_LISTED_REJECTIONS:,} more")
        if self.quarantined:
            lines.append(f"{self.quarantined:,} rejected rows kept in the quarantine table")
        lines.extend(f"warning: {warning}" for warning in self.warnings)
        return "\n".join(lines)
