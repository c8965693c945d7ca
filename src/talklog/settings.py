"""What an admin chooses for the talk-log runs: light enough to import when a DAG file parses."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from talklog.windows import DEFAULT_TIMEZONE


class TaskCopy(StrEnum):
    """What the `LINE WORKSログ` Task carries."""

    FULL = "full"  # the transcript, split into parts of 32,000 characters
    NO_CONTENT = "no_content"  # one Task per TalkLog, without the talk content
    OFF = "off"  # no Task


@dataclass(frozen=True)
class TalkLogSettings:
    timezone: str = DEFAULT_TIMEZONE
    task_copy: TaskCopy = TaskCopy.FULL
