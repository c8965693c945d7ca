"""The fields the pipeline writes, in one place: checked against the SFDX metadata by the tests.

``WRITTEN_FIELDS[object][field] = (type, min_length)``: the SFDX field type the writer relies on
and the length the field must at least hold (``None`` where no length applies). The loader uses
this list to choose the columns it sends; the tests check that every entry exists in
``salesforce`` with that type and at least that length.
"""

from __future__ import annotations

from typing import Final

FieldContract = tuple[str, int | None]

TRANSCRIPT_MAX_CHARS: Final = 131_072
"""``TalkLog__c.Transcript__c``: long text area maximum."""
TASK_DESCRIPTION_MAX_CHARS: Final = 32_000
"""``Task.Description``: split a transcript into parts beyond this."""
TASK_SUBJECT_MAX_CHARS: Final = 255

WRITTEN_FIELDS: Final[dict[str, dict[str, FieldContract]]] = {
    "ExternalContact__c": {
        "Name": ("Text", 80),
        "LineWorksUuid__c": ("Text", 64),
    },
    # The parent a rep linked gets the LINE WORKS contact id (`talklog.link_parents`).
    "Lead": {"LineWorksUuid__c": ("Text", 64)},
    "Contact": {"LineWorksUuid__c": ("Text", 64)},
    "Account": {"LineWorksUuid__c": ("Text", 64)},
    "LineWorks__c": {
        "Name": ("Text", 80),
        "LinkKey__c": ("Text", 255),
        "LineUserId__c": ("Text", 64),
        "LineWorksUserId__c": ("Text", 64),
        "Nickname__c": ("Text", 255),
        "AppLink__c": ("Url", 255),
        "Linked__c": ("Checkbox", None),
        "LinkedSince__c": ("DateTime", None),  # only `talklog links import` writes it
        "ExternalContact__c": ("Lookup", None),
        "Lead__c": ("Lookup", None),
        "Account__c": ("Lookup", None),
        "Contact__c": ("Lookup", None),
    },
    "TalkLog__c": {
        "Name": ("Text", 80),
        "TalkLogKey__c": ("Text", 255),
        "Transcript__c": ("LongTextArea", TRANSCRIPT_MAX_CHARS),
        "RoomId__c": ("Text", 64),
        "RoomType__c": ("Text", 20),
        "WindowStart__c": ("DateTime", None),
        "WindowEnd__c": ("DateTime", None),
        "MessageCount__c": ("Number", None),
        "Part__c": ("Number", None),
        "LineWorks__c": ("Lookup", None),
        "ExternalContact__c": ("Lookup", None),
        "Lead__c": ("Lookup", None),
        "Account__c": ("Lookup", None),
        "Contact__c": ("Lookup", None),
    },
    "Task": {
        "LineWorksKey__c": ("Text", 255),
        "LineWorksRoomId__c": ("Text", 64),
        "TalkLogKey__c": ("Text", 255),
        "LineWorksKind__c": ("Text", 20),
    },
}

UPSERT_KEYS: Final[dict[str, str]] = {
    "ExternalContact__c": "LineWorksUuid__c",
    "LineWorks__c": "LinkKey__c",
    "TalkLog__c": "TalkLogKey__c",
    "Task": "LineWorksKey__c",
}
"""External id (unique) field each object is upserted by."""

TASK_STANDARD_FIELDS: Final[dict[str, FieldContract]] = {
    "Subject": ("Text", TASK_SUBJECT_MAX_CHARS),
    "Description": ("LongTextArea", TASK_DESCRIPTION_MAX_CHARS),
    "Status": ("Picklist", None),
    "ActivityDate": ("Date", None),
    "OwnerId": ("Lookup", None),
    "WhoId": ("Lookup", None),
    "WhatId": ("Lookup", None),
}
"""Standard Task fields the pipeline writes too; Salesforce defines them, not the SFDX source."""

ROOM_TYPES: Final = ("OneToOne", "Group")
"""Values of ``TalkLog__c.RoomType__c`` (a Text field, so no picklist to keep in sync)."""
TASK_KINDS: Final = ("TalkLog", "Exchange")
"""Values of ``Task.LineWorksKind__c``: a talk log copy or a link exchange."""
