"""The SOQL subset: grammar and evaluation against an in-memory record store."""

from __future__ import annotations

import datetime as dt

import pytest

from talklog_dev.emulator.records import RecordStore
from talklog_dev.emulator.schema import build_schema
from talklog_dev.emulator.soql import DateRange, Evaluator, SoqlError, date_range, parse


@pytest.fixture(scope="module")
def schema():
    return build_schema()


@pytest.fixture
def store(schema) -> RecordStore:
    store = RecordStore(schema)
    lead = store.insert("Lead", {"LastName": "Yamada", "Company": "ACME"}, None)
    other = store.insert("Lead", {"LastName": "Sato", "Company": "Beta"}, None)
    store.set_fields("Lead", other, {"IsConverted": True})
    for i, (name, parent) in enumerate([("a", lead), ("b", lead), ("c", other), ("d", None)]):
        store.insert(
            "TalkLog__c",
            {"Name": name, "TalkLogKey__c": f"k{i}", "Lead__c": parent, "MessageCount__c": i,
             "WindowStart__c": f"2024-01-0{i + 1}T00:00:00Z"},
            None,
        )  # fmt: skip
    return store


def run(store: RecordStore, soql: str) -> list[dict]:
    return Evaluator(store.schema, store).run(parse(soql)).records


def names(rows: list[dict]) -> list[str]:
    return [r["Name"] for r in rows]


def test_parse_is_case_insensitive_and_structured():
    query = parse(
        "select Id, Lead__r.Name from TalkLog__c where Name = 'x' order by Name desc limit 5"
    )
    assert query.sobject == "TalkLog__c"
    assert query.fields == (("Id",), ("Lead__r", "Name"))
    assert query.limit == 5 and query.order_by[0].descending


@pytest.mark.parametrize(
    "bad", ["SELECT FROM Task", "SELECT Id FROM", "SELECT Id FROM Task WHERE", "SELECT Id Task",
            "SELECT Id FROM Task WHERE Name = 'unterminated", "SELECT Id FROM Task LIMIT x"],
)  # fmt: skip
def test_malformed_queries(bad):
    with pytest.raises(SoqlError) as exc:
        parse(bad)
    assert exc.value.code == "MALFORMED_QUERY"


def test_where_operators(store):
    assert names(run(store, "SELECT Name FROM TalkLog__c WHERE Name = 'A'")) == ["a"]
    assert names(run(store, "SELECT Name FROM TalkLog__c WHERE Name != 'a'")) == ["b", "c", "d"]
    assert names(run(store, "SELECT Name FROM TalkLog__c WHERE Name IN ('a','d')")) == ["a", "d"]
    assert names(run(store, "SELECT Name FROM TalkLog__c WHERE Name NOT IN ('a','d')")) == [
        "b",
        "c",
    ]
    assert names(
        run(store, "SELECT Name FROM TalkLog__c WHERE MessageCount__c > 1 AND NOT Name = 'c'")
    ) == ["d"]
    assert names(
        run(store, "SELECT Name FROM TalkLog__c WHERE Name = 'a' OR (MessageCount__c >= 3)")
    ) == ["a", "d"]
    assert names(run(store, "SELECT Name FROM TalkLog__c WHERE Lead__c = null")) == ["d"]
    assert names(run(store, "SELECT Name FROM TalkLog__c WHERE Name LIKE '_'")) == [
        "a",
        "b",
        "c",
        "d",
    ]
    assert names(
        run(store, "SELECT Name FROM TalkLog__c WHERE WindowStart__c < 2024-01-02T09:00:00+09:00")
    ) == ["a"]


def test_parent_relationship_fields_and_filters(store):
    rows = run(store, "SELECT Name, Lead__r.LastName, Lead__r.IsConverted FROM TalkLog__c")
    assert rows[0]["Lead__r"]["LastName"] == "Yamada" and rows[0]["Lead__r"]["IsConverted"] is False
    assert rows[3]["Lead__r"] is None
    converted = run(store, "SELECT Name FROM TalkLog__c WHERE Lead__r.IsConverted = true")
    assert names(converted) == ["c"]


def test_semi_join_order_limit_offset_and_count(store):
    soql = (
        "SELECT Name FROM TalkLog__c WHERE Lead__c IN (SELECT Id FROM Lead WHERE Company = 'acme')"
    )
    assert names(run(store, soql)) == ["a", "b"]
    ordered = run(
        store, "SELECT Name FROM TalkLog__c ORDER BY Lead__r.LastName DESC NULLS LAST, Name"
    )
    assert names(ordered) == ["a", "b", "c", "d"]
    assert names(run(store, "SELECT Name FROM TalkLog__c ORDER BY Name DESC LIMIT 2 OFFSET 1")) == [
        "c",
        "b",
    ]
    result = Evaluator(store.schema, store).run(parse("SELECT COUNT() FROM TalkLog__c"))
    assert result.total_size == 4


def test_ids_compare_in_15_and_18_characters(store):
    record = run(store, "SELECT Id FROM Lead WHERE LastName = 'Yamada'")[0]
    short = record["Id"][:15]
    assert run(store, f"SELECT Id FROM Lead WHERE Id = '{short}'")[0]["Id"] == record["Id"]
    with pytest.raises(SoqlError) as exc:
        run(store, "SELECT Id FROM Lead WHERE Id = 'nope'")
    assert exc.value.code == "INVALID_QUERY_FILTER_OPERATOR"


def test_unknown_fields_and_objects(store):
    with pytest.raises(SoqlError) as exc:
        run(store, "SELECT Nope FROM Lead")
    assert exc.value.code == "INVALID_FIELD"
    with pytest.raises(SoqlError) as exc:
        run(store, "SELECT Id FROM Nope")
    assert exc.value.code == "INVALID_TYPE"
    with pytest.raises(SoqlError):
        run(store, "SELECT Id FROM Lead WHERE IsConverted = 'true'")


def test_date_literals():
    today = dt.date(2024, 1, 10)  # a Wednesday
    assert date_range("TODAY", today) == DateRange("TODAY", today, dt.date(2024, 1, 11))
    assert date_range("LAST_N_DAYS:7", today).start == dt.date(2024, 1, 3)
    assert date_range("THIS_WEEK", today).start == dt.date(2024, 1, 7)  # weeks start on Sunday
    assert date_range("LAST_MONTH", today).start == dt.date(2023, 12, 1)
    query = parse("SELECT Id FROM Task WHERE ActivityDate = YESTERDAY", today=today)
    assert query.where.value.value.start == dt.date(2024, 1, 9)
