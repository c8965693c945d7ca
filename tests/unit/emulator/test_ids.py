"""Salesforce ids: case-safe suffix, 15/18 characters, key prefixes."""

from __future__ import annotations

from talklog_dev.emulator.ids import (
    IdFactory,
    case_safe_suffix,
    custom_prefixes,
    normalize_id,
    to18,
)


def test_case_safe_suffix_matches_known_salesforce_ids():
    assert to18("001D000000IqhSL") == "001D000000IqhSLIAZ"
    assert to18("003D000000QV9n2") == "003D000000QV9n2IAD"
    assert case_safe_suffix("00000000000000a") == "AAA"


def test_normalize_accepts_15_and_18_characters_any_case():
    assert normalize_id("001D000000IqhSL") == "001D000000IqhSLIAZ"
    assert normalize_id("001d000000iqhsliaz") == "001D000000IqhSLIAZ"
    assert normalize_id("001D000000IqhSLIAZ") == "001D000000IqhSLIAZ"
    for bad in ("", "abc", "001D000000IqhS!", "001D000000IqhSL99", 12, None, "001D000000IqhSLZZZ"):
        assert normalize_id(bad) is None


def test_factory_makes_unique_valid_ids_with_prefix():
    factory = IdFactory()
    ids = [factory.new_id("00T") for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(i.startswith("00T") and len(i) == 18 and normalize_id(i) == i for i in ids)


def test_custom_prefixes_are_deterministic_by_sorted_name():
    assert custom_prefixes(["TalkLog__c", "ExternalContact__c", "LineWorks__c"]) == {
        "ExternalContact__c": "a00",
        "LineWorks__c": "a01",
        "TalkLog__c": "a02",
    }
