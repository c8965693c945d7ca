"""What an admin chooses for the talk-log runs: light enough to import when a DAG file parses."""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from talklog.windows import DEFAULT_TIMEZONE

Choice = TypeVar("Choice", bound=StrEnum)


def env_choice(
    name: str, choices: type[Choice], default: Choice, value: str | None = None
) -> Choice:
    """`value`, or the environment variable `name` (blank: `default`), as one of `choices`;
    ValueError naming the setting and the choices when it is none of them."""
    raw = (os.environ.get(name, "") if value is None else value).strip().lower()
    try:
        return choices(raw or default.value)
    except ValueError:
        allowed = ", ".join(choice.value for choice in choices)
        raise ValueError(f"{name} must be one of {allowed}, got {raw!r}") from None


class TaskCopy(StrEnum):
    """What the `LINE WORKSログ` Task carries."""

    FULL = "full"  # the transcript, split into parts of 32,000 characters
    NO_CONTENT = "no_content"  # one Task per TalkLog, without the talk content
    OFF = "off"  # no Task


@dataclass(frozen=True)
class TalkLogSettings:
    timezone: str = DEFAULT_TIMEZONE
    task_copy: TaskCopy = TaskCopy.FULL
