"""Synthetic Salesforce record ids: 18-character case-safe ids with real key prefixes.

The case-safe suffix is the emulator's implementation of Salesforce's algorithm
(`talklog_dev.emulator.ids`); the key prefixes are those the emulator gives its objects.
"""

from __future__ import annotations

import random

from talklog.store.models import TargetType
from talklog_dev.emulator.ids import BASE62, base62, case_safe_suffix

__all__ = [
    "TARGET_PREFIXES",
    "case_safe_suffix",
    "is_case_safe_id",
    "make_id",
    "random_id",
]

POD = "5g"  # the two characters after the key prefix name the pod in real orgs

LEAD_PREFIX = "00Q"
CONTACT_PREFIX = "003"
ACCOUNT_PREFIX = "001"
USER_PREFIX = "005"
# Custom objects get a0X prefixes per org: the emulator gives ExternalContact__c a00.
EXTERNAL_CONTACT_PREFIX = "a00"

TARGET_PREFIXES: dict[TargetType, str] = {
    TargetType.EXTERNAL_CONTACT: EXTERNAL_CONTACT_PREFIX,
    TargetType.LEAD: LEAD_PREFIX,
    TargetType.CONTACT: CONTACT_PREFIX,
    TargetType.PERSON_ACCOUNT: ACCOUNT_PREFIX,
}


def is_case_safe_id(value: str) -> bool:
    """True for an 18-character id whose suffix matches its first 15 characters."""
    return (
        len(value) == 18
        and all(c in BASE62 for c in value[:15])
        and value[15:] == case_safe_suffix(value[:15])
    )


def make_id(prefix: str, number: int) -> str:
    """The 18-character id of record `number` of the object with this key prefix."""
    id15 = f"{prefix}{POD}0{base62(number % 62**9, 9)}"
    return id15 + case_safe_suffix(id15)


def random_id(prefix: str, rng: random.Random) -> str:
    """A random-looking (but seeded) 18-character id with this key prefix."""
    return make_id(prefix, rng.getrandbits(52))
