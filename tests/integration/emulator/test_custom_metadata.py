"""An emulator started on other SFDX metadata: a non-unique external id gives HTTP 300."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from simple_salesforce.exceptions import SalesforceMoreThanOneRecord

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


def _sfdx_project(root: Path) -> Path:
    (root / "sfdx-project.json").write_text('{"packageDirectories": [{"path": "force-app"}]}')
    folder = root / "force-app/main/default/objects/Thing__c"
    (folder / "fields").mkdir(parents=True)
    (folder / "Thing__c.object-meta.xml").write_text(OBJECT_XML)
    (folder / "fields/Code__c.field-meta.xml").write_text(FIELD_XML)
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
