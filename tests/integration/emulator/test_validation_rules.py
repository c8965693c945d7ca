"""Validation rules of the org (an emulator switch), as the real clients see them (issue 16).

A row that meets an active rule's condition fails with FIELD_CUSTOM_VALIDATION_EXCEPTION, the
rule's message and its error field (none for a rule shown at the top of the page): REST
create, update and upsert, collections and Bulk rows alike; a row that does not meet it, an
inactive rule and a removed one refuse nothing; `reset` clears the rules.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from talklog.salesforce.failures import Failure, row_error
from talklog_dev.emulator.faults import parse_fault_option
from talklog_dev.emulator.process import run_emulator

CODE = "FIELD_CUSTOM_VALIDATION_EXCEPTION"


def rule(**overrides: Any) -> dict[str, Any]:
    base = {
        "object": "Task",
        "field": "Subject",
        "condition": "contains",
        "value": "secret",
        "message": "Subject: no secrets, please",
        "error_field": "Subject",
    }
    return {**base, **overrides}


# rule, a row it refuses, a row it lets through (all on creation)
CONDITIONS = {
    "contains": (rule(), {"Subject": "a secret"}, {"Subject": "a Secret"}),  # case-sensitive
    "longer_than": (
        rule(object="TalkLog__c", field="Transcript__c", condition="longer_than", value=5,
             error_field="Transcript__c"),
        {"TalkLogKey__c": "r", "Transcript__c": "123456"},
        {"TalkLogKey__c": "a", "Transcript__c": "12345"},
    ),
    "is_blank": (
        rule(object="LineWorks__c", field="Nickname__c", condition="is_blank", value=None,
             error_field=None, message="Nickname is required"),
        {"LinkKey__c": "r"},
        {"LinkKey__c": "a", "Nickname__c": "Yamada"},
    ),
    "equals (number)": (
        rule(object="TalkLog__c", field="MessageCount__c", condition="equals", value="0",
             error_field="MessageCount__c", message="Empty talk logs are refused"),
        {"TalkLogKey__c": "r", "MessageCount__c": 0},
        {"TalkLogKey__c": "a", "MessageCount__c": 1},
    ),
    "equals (picklist)": (
        rule(field="Status", condition="equals", value="Deferred", error_field="Status",
             message="Deferred, really?"),
        {"Subject": "s", "Status": "Deferred"},
        {"Subject": "s", "Status": "Completed"},
    ),
}  # fmt: skip
CASES = list(CONDITIONS.values())
IDS = list(CONDITIONS)


def _fields(spec: dict[str, Any]) -> list[str]:
    return [spec["error_field"]] if spec.get("error_field") else []


def _rest_error(exc: pytest.ExceptionInfo) -> dict[str, Any]:
    (error,) = exc.value.content
    return error


@pytest.mark.parametrize(("spec", "refused", "accepted"), CASES, ids=IDS)
def test_rest_create_answers_the_rules_error(sf_emulator, sf, spec, refused, accepted):
    sf_emulator.set_validation_rules(spec)
    api = getattr(sf, spec["object"])
    with pytest.raises(SalesforceMalformedRequest) as exc:
        api.create(refused)
    assert exc.value.status == 400
    assert _rest_error(exc) == {"message": spec["message"], "errorCode": CODE,
                                "fields": _fields(spec)}  # fmt: skip
    assert api.create(accepted)["success"]
    assert sf_emulator.stats()["records"][spec["object"]] == 1


@pytest.mark.parametrize(("spec", "refused", "accepted"), CASES, ids=IDS)
def test_an_update_into_the_condition_is_refused_and_the_record_kept(
    sf_emulator, sf, spec, refused, accepted
):
    api = getattr(sf, spec["object"])
    record_id = api.create(accepted)["id"]
    sf_emulator.set_validation_rules(spec)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        api.update(record_id, {name: refused.get(name) for name in accepted if "Key" not in name})
    assert _rest_error(exc)["errorCode"] == CODE
    stored = api.get(record_id)
    assert {name: stored[name] for name in accepted} == accepted


def test_a_rule_checks_the_whole_record_not_only_the_fields_sent(sf_emulator, sf):
    record_id = sf.Task.create({"Subject": "a secret"})["id"]
    sf_emulator.set_validation_rules(rule())
    with pytest.raises(SalesforceMalformedRequest, match=CODE):
        sf.Task.update(record_id, {"Description": "anything"})
    assert sf.Task.update(record_id, {"Subject": "public"}) == 204


def test_rest_upsert_and_collections(sf_emulator, sf):
    spec = rule(object="TalkLog__c", field="Transcript__c", condition="longer_than", value=3,
                error_field=None, message="Transcripts stay short")  # fmt: skip
    sf_emulator.set_validation_rules(spec)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.TalkLog__c.upsert("TalkLogKey__c/k", {"Name": "k", "Transcript__c": "long"})
    assert _rest_error(exc) == {"message": "Transcripts stay short", "errorCode": CODE,
                                "fields": []}  # fmt: skip
    results = sf.restful(
        "composite/sobjects/TalkLog__c/TalkLogKey__c",
        method="PATCH",
        json={"allOrNone": False, "records": [
            {"attributes": {"type": "TalkLog__c"}, "TalkLogKey__c": "a", "Transcript__c": "abc"},
            {"attributes": {"type": "TalkLog__c"}, "TalkLogKey__c": "b", "Transcript__c": "abcd"},
        ]},
    )  # fmt: skip
    assert [r["success"] for r in results] == [True, False]
    assert results[1]["errors"] == [
        {"statusCode": CODE, "message": "Transcripts stay short", "fields": []}
    ]


@pytest.mark.parametrize(("spec", "refused", "accepted"), CASES, ids=IDS)
def test_bulk_rows_fail_with_the_rules_sf_error(sf_emulator, bulk, spec, refused, accepted):
    sf_emulator.set_validation_rules(spec)
    columns = {**refused, **accepted}
    rows = [{name: row.get(name) for name in columns} for row in (refused, accepted)]  # None: #N/A
    result = bulk.ingest(spec["object"], "insert", rows)
    (failed,) = result.failed
    fields = ",".join(_fields(spec))
    assert failed["sf__Error"] == f"{CODE}:{spec['message']}:{fields} --"
    error = row_error(failed["sf__Error"])
    assert (error.code, error.message, error.fields) == (CODE, spec["message"],
                                                         tuple(_fields(spec)))  # fmt: skip
    assert error.failure is Failure.NEEDS_A_PERSON
    assert sf_emulator.stats()["records"][spec["object"]] == 1


@pytest.mark.parametrize(
    "fix",
    [
        pytest.param(lambda em, spec: em.set_validation_rules({**spec, "active": False}),
                     id="deactivated"),
        pytest.param(lambda em, spec: em.set_validation_rules(), id="removed"),
        pytest.param(lambda em, spec: em.reset(records=False, counters=False), id="reset"),
    ],
)  # fmt: skip
def test_a_deactivated_or_removed_rule_refuses_nothing(sf_emulator, sf, fix):
    spec = rule()
    sf_emulator.set_validation_rules(spec)
    with pytest.raises(SalesforceMalformedRequest, match=CODE):
        sf.Task.create({"Subject": "a secret"})
    fix(sf_emulator, spec)
    assert sf.Task.create({"Subject": "a secret"})["success"]


def test_the_first_rule_that_matches_answers(sf_emulator, sf):
    first = rule(message="first", value="sec")
    second = rule(message="second")
    other_object = rule(object="Lead", field="LastName", error_field="LastName", message="Lead")
    sf_emulator.set_validation_rules(other_object, first, second)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Task.create({"Subject": "a secret"})
    assert _rest_error(exc)["message"] == "first"
    assert sf_emulator.faults()["validation_rules"][1]["message"] == "first"


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        (rule(object="Nope__c"), "no object Nope__c"),
        (rule(field="Nope__c"), "no field Nope__c on Task"),
        (rule(error_field="Nope__c"), "no field Nope__c on Task"),
        (rule(condition="matches"), "condition"),
        (rule(condition="longer_than", value="5"), "longer_than takes a number"),
        (rule(condition="contains", value=""), "contains takes a non-empty text"),
        (rule(condition="is_blank"), "is_blank takes no value"),
        (rule(field="Priority", condition="equals", value="Urgent"), "restricted picklist"),
        (rule(field="IsClosed", condition="contains"), "contains needs a text field"),
        ({**rule(), "formula": "ISBLANK(Subject)"}, "formula"),
        ({"object": "Task"}, "message"),
    ],
)
def test_a_rule_the_emulator_cannot_apply_is_refused_and_nothing_changes(
    sf_emulator, spec, problem
):
    sf_emulator.set_validation_rules(rule(message="kept"))
    response = sf_emulator.session().put(
        f"{sf_emulator.instance_url}/__emulator__/faults",
        json={"validation_rules": [spec], "lock_seed": 7},
        timeout=10,
    )
    assert response.status_code == 400
    (error,) = response.json()
    assert error["errorCode"] == "INVALID_FIELD" and problem in error["message"]
    faults = sf_emulator.faults()
    assert faults["lock_seed"] == 0
    assert [r["message"] for r in faults["validation_rules"]] == ["kept"]


def test_validation_rules_as_start_options(tmp_path):
    spec = rule(message="from the start")
    fault = parse_fault_option(f"validation_rules=[{json.dumps(spec)}]")
    assert fault == {"validation_rules": [spec]}
    args = ["--validation-rule", json.dumps(rule(field="Description", message="option"))]
    with run_emulator(tmp_path, "--fault", f"validation_rules=[{json.dumps(spec)}]", *args) as org:
        sf = org.salesforce()
        for subject, description, message in [
            ("a secret", "", "from the start"),
            ("public", "a secret", "option"),
        ]:
            with pytest.raises(SalesforceMalformedRequest) as exc:
                sf.Task.create({"Subject": subject, "Description": description})
            assert _rest_error(exc)["message"] == message
        org.reset()  # back to the start options: the rules stay
        assert len(org.faults()["validation_rules"]) == 2
