"""An emulator started on other SFDX metadata: a non-unique external id gives HTTP 300, a
unique case-insensitive one folds case, value sets and number precision come from the fields."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceMoreThanOneRecord

from talklog_dev.emulator.process import EmulatorHandle, run_emulator

NS = "http://soap.sforce.com/2006/04/metadata"
OBJECT_XML = f"""<?xml version="1.0" encoding="UTF-8"?>
<CustomObject xmlns="{NS}">
    <label>Thing</label>
    <nameField><label>Thing Name</label><type>Text</type></nameField>
</CustomObject>
"""
FIELD_XML = f"""<?xml version="1.0" encoding="UTF-8"?>
<CustomField xmlns="{NS}">
    <fullName>Code__c</fullName>
    <label>Code</label>
    <type>Text</type>
    <length>20</length>
    <externalId>true</externalId>
    <unique>false</unique>
</CustomField>
"""

EXTRA_FIELDS = {
    "Ref__c": """<type>Text</type><length>20</length><externalId>true</externalId>
        <unique>true</unique><caseSensitive>false</caseSensitive>""",
    "Kind__c": """<type>Picklist</type><valueSet><restricted>true</restricted>
        <valueSetDefinition><sorted>false</sorted>
        <value><fullName>Red</fullName><default>true</default><label>赤</label></value>
        <value><fullName>Old</fullName><default>false</default><label>Old</label>
            <isActive>false</isActive></value>
        </valueSetDefinition></valueSet>""",
    "Tag__c": """<type>Picklist</type><valueSet><valueSetDefinition>
        <value><fullName>A</fullName><default>false</default><label>A</label></value>
        </valueSetDefinition></valueSet>""",
    "Amount__c": "<type>Number</type><precision>5</precision><scale>2</scale>",
}


def _field_xml(name: str, body: str) -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<CustomField xmlns="{NS}">'
        f"<fullName>{name}</fullName><label>{name}</label>{body}</CustomField>\n"
    )


def _sfdx_project(root: Path) -> Path:
    (root / "sfdx-project.json").write_text('{"packageDirectories": [{"path": "force-app"}]}')
    folder = root / "force-app/main/default/objects/Thing__c"
    (folder / "fields").mkdir(parents=True)
    (folder / "Thing__c.object-meta.xml").write_text(OBJECT_XML)
    (folder / "fields/Code__c.field-meta.xml").write_text(FIELD_XML)
    for name, body in EXTRA_FIELDS.items():
        (folder / f"fields/{name}.field-meta.xml").write_text(_field_xml(name, body))
    return root


@pytest.fixture(scope="module")
def thing_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    root = _sfdx_project(tmp_path_factory.mktemp("sfdx"))
    workdir = tmp_path_factory.mktemp("thing-emulator")
    with run_emulator(workdir, env={"TALKLOG_SFDX_ROOT": str(root)}) as handle:
        yield handle


def test_upsert_with_two_matches_answers_300(thing_emulator):
    sf = thing_emulator.salesforce()
    first = sf.Thing__c.create({"Code__c": "C-1"})["id"]
    second = sf.Thing__c.create({"Code__c": "c-1"})["id"]
    with pytest.raises(SalesforceMoreThanOneRecord) as exc:
        sf.Thing__c.upsert("Code__c/C-1", {"Name": "x"})
    assert sorted(exc.value.content) == sorted(
        f"/services/data/v66.0/sobjects/Thing__c/{i}" for i in (first, second)
    )
    assert sf.Thing__c.get(first)["Name"] == first  # Name defaults to the record id


def test_unique_case_insensitive_external_id_folds_case(thing_emulator):
    sf = thing_emulator.salesforce()
    assert sf.Thing__c.upsert("Ref__c/R-1", {"Amount__c": 1}) == 201
    assert sf.Thing__c.upsert("Ref__c/r-1", {"Amount__c": 2}) == 200
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Thing__c.create({"Ref__c": "r-1"})
    assert exc.value.content[0]["errorCode"] == "DUPLICATE_VALUE"
    described = {f["name"]: f for f in sf.Thing__c.describe()["fields"]}
    assert described["Ref__c"]["caseSensitive"] is False


def test_value_sets_and_precision_come_from_the_metadata(thing_emulator):
    sf = thing_emulator.salesforce()
    assert sf.Thing__c.create({"Kind__c": "Red", "Tag__c": "anything"})["success"]
    for bad in ("Old", "Blue"):  # an inactive value is refused like an unknown one
        with pytest.raises(SalesforceMalformedRequest) as exc:
            sf.Thing__c.create({"Kind__c": bad})
        assert exc.value.content[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert sf.Thing__c.create({"Amount__c": 999.999})["success"]  # 3 integer digits
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Thing__c.create({"Amount__c": 1000})
    assert exc.value.content[0]["errorCode"] == "NUMBER_OUTSIDE_VALID_RANGE"
    described = {f["name"]: f for f in sf.Thing__c.describe()["fields"]}
    kind = described["Kind__c"]
    assert kind["restrictedPicklist"] is True and described["Tag__c"]["restrictedPicklist"] is False
    assert [
        (v["value"], v["label"], v["active"], v["defaultValue"]) for v in kind["picklistValues"]
    ] == [
        ("Red", "赤", True, True),
        ("Old", "Old", False, False),
    ]
    assert (described["Amount__c"]["precision"], described["Amount__c"]["scale"]) == (5, 2)
