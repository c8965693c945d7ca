"""Synthetic Salesforce ids: Salesforce's case-safe suffix and the right key prefixes."""

from __future__ import annotations

import random

import pytest

from talklog.store.models import TargetType
from talklog_dev.emulator.ids import normalize_id
from talklog_dev.synth import sfids


@pytest.mark.parametrize(
    ("id15", "suffix"),
    [("001D000000IqhSL", "IAZ"), ("000000000000000", "AAA"), ("AAAAAAAAAAAAAAA", "555")],
)
def test_case_safe_suffix(id15, suffix):
    assert sfids.case_safe_suffix(id15) == suffix


def test_made_ids_are_18_characters_case_safe_and_distinct():
    ids = {sfids.make_id(sfids.LEAD_PREFIX, n) for n in range(0, 10**7, 9973)}
    assert all(len(i) == 18 and sfids.is_case_safe_id(i) for i in ids)
    assert len(ids) == len(range(0, 10**7, 9973))


@pytest.mark.parametrize(
    ("kind", "prefix"),
    [
        (TargetType.LEAD, "00Q"),
        (TargetType.CONTACT, "003"),
        (TargetType.PERSON_ACCOUNT, "001"),
        (TargetType.EXTERNAL_CONTACT, "a00"),
    ],
)
def test_every_target_kind_has_its_key_prefix(kind, prefix):
    record_id = sfids.random_id(sfids.TARGET_PREFIXES[kind], random.Random(7))
    assert record_id.startswith(prefix)
    assert sfids.is_case_safe_id(record_id)


def test_a_wrong_suffix_is_not_case_safe():
    good = sfids.make_id(sfids.CONTACT_PREFIX, 123456789)
    assert not sfids.is_case_safe_id(good[:15] + "ZZZ")
    assert not sfids.is_case_safe_id(good[:15])


def test_the_emulator_accepts_synthetic_ids():
    record_id = sfids.random_id(sfids.CONTACT_PREFIX, random.Random(11))
    assert normalize_id(record_id) == record_id
