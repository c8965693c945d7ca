"""The validation-rule conditions and their binding to the schema, in process."""

from __future__ import annotations

from typing import Any

import pytest

from talklog_dev.emulator.records import RecordError, RecordStore
from talklog_dev.emulator.schema import build_schema
from talklog_dev.emulator.validation import compile_rules


@pytest.fixture(scope="module")
def schema():
    return build_schema()


def _rule(**spec: Any) -> dict[str, Any]:
    return {"object": "task", "field": "subject", "message": "m", **spec}


@pytest.mark.parametrize(
    ("spec", "value", "refused"),
    [
        (_rule(condition="contains", value="秘"), "社外秘", True),
        (_rule(condition="contains", value="abc"), "xABCx", False),  # CONTAINS is case-sensitive
        (_rule(condition="contains", value="abc"), None, False),
        (_rule(condition="longer_than", value=3), "abcd", True),
        (_rule(condition="longer_than", value=3), "abc", False),
        (_rule(condition="longer_than", value=0), None, False),  # LEN(null) is 0
        (_rule(condition="is_blank"), None, True),
        (_rule(condition="is_blank"), "", True),
        (_rule(condition="is_blank"), " ", False),
        (_rule(condition="equals", value="abc"), "abc", True),
        (_rule(condition="equals", value="abc"), "ABC", False),  # text = is case-sensitive
        (_rule(field="IsClosed", condition="equals", value="true"), True, True),
        (_rule(field="ActivityDate", condition="equals", value="2026-01-09"), "2026-01-09", True),
        (_rule(field="ActivityDate", condition="equals", value="2026-01-09"), "2026-01-10", False),
    ],
)
def test_conditions(schema, spec, value, refused):
    (rule,) = compile_rules(schema, [spec])
    assert (rule.object, rule.field) == ("Task", schema.get("Task").field(spec["field"]).name)
    assert rule.matches({rule.field: value}) is refused


def test_inactive_rules_are_kept_out_and_names_take_the_api_spelling(schema):
    rules = compile_rules(
        schema,
        [
            _rule(condition="is_blank", active=False),
            _rule(condition="is_blank", error_field="DESCRIPTION"),
        ],
    )
    assert [r.error_field for r in rules] == ["Description"]
    assert compile_rules(schema, None) == ()


def test_the_store_refuses_on_insert_and_update_after_the_required_fields(schema):
    store = RecordStore(schema)
    record_id = store.insert("TalkLog__c", {"TalkLogKey__c": "k", "Transcript__c": "ok"}, None)
    store.set_validation_rules(
        compile_rules(schema, [{"object": "TalkLog__c", "field": "Transcript__c",
                                "condition": "longer_than", "value": 2, "message": "short"}])
    )  # fmt: skip
    with pytest.raises(RecordError) as exc:
        store.update("TalkLog__c", record_id, {"Transcript__c": "long"}, None)
    error = exc.value.error
    assert (error.code, error.message, error.fields) == (
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "short",
        (),
    )
    with pytest.raises(RecordError) as exc:
        store.insert("TalkLog__c", {"Transcript__c": "long"}, None)
    assert exc.value.error.code == "REQUIRED_FIELD_MISSING"
    store.set_validation_rules(())
    store.update("TalkLog__c", record_id, {"Transcript__c": "long"}, None)
