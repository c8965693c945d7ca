"""Importing LINE WORKS message-content exports into the message store.

- `export_format`: the CSV export read row by row (header, times, parties, attachment
  markers), each row with its physical line numbers;
- `message_keys`: the stable key of each message (an export has no message id);
- `identities`: senders and receivers matched to the store's LW and LINE users;
- `store_writes`: users, rooms, memberships and messages written a chunk per transaction;
- `importer`: `import_export`, the whole file chunk by chunk into a `summary.ImportSummary`;
- `confinement`: the import folder the DAG reads from (no traversal, links out, hidden or
  special files).

A re-import of the same rows conflicts on the message keys and is skipped (ON CONFLICT DO
NOTHING). Rows that cannot be imported are rejected with their physical line numbers and a
reason, and kept in the quarantine table; the summary accounts for every row (read = inserted
+ duplicates + rejected). No message, exception or log line quotes the file's content.
"""

from talklog.imports.confinement import ImportPathRefused, confine
from talklog.imports.export_format import (
    ExportReader,
    ExportRow,
    ImportFileError,
    Party,
    RowProblem,
    classify_talk,
    is_file_name,
    parse_parties,
    parse_party,
    parse_time,
    read_export,
)
from talklog.imports.importer import DEFAULT_CHUNK_ROWS, import_export
from talklog.imports.message_keys import message_content, message_key
from talklog.imports.store_writes import ImportStoreError
from talklog.imports.summary import ImportSummary, Rejection

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "ExportReader",
    "ExportRow",
    "ImportFileError",
    "ImportPathRefused",
    "ImportStoreError",
    "ImportSummary",
    "Party",
    "Rejection",
    "RowProblem",
    "classify_talk",
    "confine",
    "import_export",
    "is_file_name",
    "message_content",
    "message_key",
    "parse_parties",
    "parse_party",
    "parse_time",
    "read_export",
]
