"""Salesforce record ids: 15-character case-sensitive ids, the 18-character case-safe form."""

from __future__ import annotations

import itertools
import re

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"^[a-zA-Z0-9]{15}$")
# The two characters after the key prefix name the pod in real orgs; the emulator uses "Em".
POD = "Em"


def case_safe_suffix(id15: str) -> str:
    """The three-character suffix that makes a 15-character id case-insensitive."""
    suffix = ""
    for chunk in range(3):
        bits = 0
        for pos, char in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << pos
        suffix += _SUFFIX_CHARS[bits]
    return suffix


def to18(record_id: str) -> str:
    """The 18-character form of a valid 15- or 18-character id."""
    return record_id if len(record_id) == 18 else record_id + case_safe_suffix(record_id)


def _recase(value: str) -> str | None:
    """The 15-character id an 18-character id names (its suffix restores the case)."""
    suffix = value[15:].upper()
    chars = []
    for chunk in range(3):
        bits = _SUFFIX_CHARS.index(suffix[chunk])
        for pos, char in enumerate(value[chunk * 5 : chunk * 5 + 5]):
            upper = bool(bits & (1 << pos))
            if upper and not char.isalpha():
                return None
            chars.append(char.upper() if upper else char.lower())
    return "".join(chars)


def normalize_id(value: object) -> str | None:
    """The canonical 18-character id, or None when the value is not a valid id.

    Like Salesforce, an 18-character id is matched case-insensitively: its suffix tells
    the case of the first 15 characters.
    """
    if not isinstance(value, str) or not _ID_RE.match(value if len(value) == 15 else value[:15]):
        return None
    if len(value) == 15:
        return value + case_safe_suffix(value)
    if len(value) != 18 or any(c not in _SUFFIX_CHARS for c in value[15:].upper()):
        return None
    id15 = _recase(value)
    return None if id15 is None else id15 + value[15:].upper()


def is_valid_id(value: object) -> bool:
    """True for a well-formed 15- or 18-character id."""
    return normalize_id(value) is not None


def key_prefix(record_id: str) -> str:
    """The three-character key prefix naming the object of an id."""
    return record_id[:3]


def base62(number: int, width: int) -> str:
    """`number` in base 62, zero-padded to `width` digits (the id alphabet)."""
    digits = ""
    while number:
        number, rem = divmod(number, 62)
        digits = BASE62[rem] + digits
    return digits.rjust(width, "0")


class IdFactory:
    """Makes new 18-character ids, unique per key prefix and increasing."""

    def __init__(self, start: int = 1) -> None:
        self._counter = itertools.count(start)

    def new_id(self, prefix: str) -> str:
        """A new id for an object with this key prefix."""
        id15 = f"{prefix}{POD}0{base62(next(self._counter), 9)}"
        return id15 + case_safe_suffix(id15)

    def advance_past(self, record_id: str) -> None:
        """Make sure later ids sort after an id loaded from saved state."""
        tail = record_id[6:15]
        number = 0
        for char in tail:
            number = number * 62 + BASE62.index(char)
        current = next(self._counter)
        self._counter = itertools.count(max(current, number + 1))


def custom_prefixes(names: list[str]) -> dict[str, str]:
    """Key prefixes a00, a01, ... for custom objects, assigned by sorted name."""
    return {name: f"a0{BASE62[i]}" for i, name in enumerate(sorted(names))}
