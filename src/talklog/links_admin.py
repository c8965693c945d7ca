"""Bulk links for admins (issue 18): `talklog links import | list | unlink`.

An admin's link goes through the same Salesforce path as a rep's click: the command sets the
parent lookup of the contact's `LineWorks__c` (the record the link sync mirrors for every LINE
customer of every staff member) and ticks `Linked__c`; `unlink` unticks it. Salesforce stays
the one place that decides: the next link-sync run reads these records back like a rep's.

The CSV has a header; each row names a LINE WORKS contact (`contact_id`, or `staff` = the staff
member's LINE WORKS user id or account email with `line_user_id`) and `target_id`, the record
(15 or 18 characters) whose key prefix tells the object: an external contact (its prefix from
describe), a lead (`00Q`), a contact (`003`) or a person account (`001`). `linked_since` (ISO
time, optional) is when a link migrated from another system started: the first period of a
new link starts then instead of at the import (refused, row by row, in an org whose
`LineWorks__c` lacks `LinkedSince__c`: one describe tells). Each row is checked before anything is
written (the contact is mirrored, the id well formed, the record there, not a converted lead,
of an object a link can point at); a bad row is reported with its line number and reason and
never stops the good ones. A row whose record already says the same is "unchanged": a second
import of a file changes nothing. Output names ids only, never a name or a message.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from talklog.batching import IN_LIST_SIZE, chunked
from talklog.loading import BulkLoader, patient_queries
from talklog.salesforce.fields import UPSERT_KEYS
from talklog.salesforce.soql import is_salesforce_id, quote
from talklog.salesforce_links import (
    LINKED_SINCE,
    NO_LINKED_SINCE,
    PARENTS,
    has_linked_since,
    parse_stamp,
    soql_stamp,
)
from talklog.store.models import LineContact, LineWorksUser, Link, TargetType
from talklog.targets import (
    IN_CLAUSE_SIZE,
    CustomerRecord,
    Describe,
    Placement,
    QueryAll,
    person_accounts_enabled,
    resolve_customers,
)

CONTACT, STAFF, LINE_USER, TARGET, SINCE = (
    "contact_id", "staff", "line_user_id", "target_id", "linked_since",
)  # fmt: skip
STANDARD_PREFIXES = {"00Q": TargetType.LEAD, "003": TargetType.CONTACT}
STANDARD_PREFIXES["001"] = TargetType.PERSON_ACCOUNT
LOOKUPS = {kind: name for name, kind in PARENTS}
_RECORDS_SOQL = (
    "SELECT Id, LinkKey__c, LineWorksUserId__c, Linked__c, "
    + ", ".join(name for name, _ in PARENTS)
    + ", LastModifiedDate FROM LineWorks__c WHERE {where} ORDER BY LinkKey__c"
)
_REASONS = {
    "ENTITY_IS_DELETED": "deleted record",
    "INVALID_TARGET": "wrong object",
    "PERSON_ACCOUNTS_DISABLED": "wrong object",
}


class LinksFileError(ValueError):
    """The file cannot be read as a links CSV (never quoting its rows)."""


@dataclass(frozen=True)
class LinkRow:
    """One CSV row: who (a contact id, or staff and LINE user), to which record, since when."""

    line: int
    contact_id: str = ""
    staff: str = ""
    line_user_id: str = ""
    target_id: str = ""
    linked_since: dt.datetime | None = None


@dataclass(frozen=True)
class Wanted:
    """A row that passed its checks: the contact's record and the link it should show."""

    row: LinkRow
    contact_id: str
    kind: TargetType
    target_id: str  # as Salesforce reads it (`normalized_id`)


@dataclass
class ImportReport:
    """What an import (or an unlink) did, row by row where it failed."""

    rows: int = 0
    linked: int = 0  # ticked with this parent now (was unticked, or new)
    relinked: int = 0  # was linked to another record
    unlinked: int = 0
    unchanged: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (CSV line, reason)
    load: dict[str, Any] = field(default_factory=dict)
    row_label: str = "line"  # what the numbers of `errors` count

    def fail(self, line: int, reason: str) -> None:
        self.errors.append((line, reason))

    def render(self) -> str:
        counts = ", ".join(
            f"{name} {getattr(self, name)}"
            for name in ("rows", "linked", "relinked", "unlinked", "unchanged")
        )
        lines = [f"{counts}, errors {len(self.errors)}"]
        lines += [f"{self.row_label} {n}: {reason}" for n, reason in sorted(self.errors)]
        if self.errors:
            lines.append("rows with errors were not written; fix them and import the file again")
        return "\n".join(lines)


def read_rows(path: str | Path) -> tuple[list[LinkRow], list[tuple[int, str]]]:
    """The file's rows and the lines that cannot be read (a bad `linked_since`)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            columns = set(reader.fieldnames or ())
            _check_columns(columns)
            return _parse(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise LinksFileError(f"cannot read {path}: {type(error).__name__}") from None


def _check_columns(columns: set[str]) -> None:
    if TARGET not in columns or not (CONTACT in columns or {STAFF, LINE_USER} <= columns):
        raise LinksFileError(
            f"the header needs {TARGET} and {CONTACT}, or {STAFF} and {LINE_USER}"
            f" (optional: {SINCE})"
        )


def _parse(reader: csv.DictReader[str]) -> tuple[list[LinkRow], list[tuple[int, str]]]:
    rows, errors = [], []
    for values in reader:
        line = reader.line_num
        cell = {name: (values.get(name) or "").strip() for name in (CONTACT, STAFF, LINE_USER)}
        since = (values.get(SINCE) or "").strip()
        try:
            started = _aware(dt.datetime.fromisoformat(since)) if since else None
        except ValueError:
            errors.append((line, f"malformed {SINCE}: not an ISO time with an offset"))
            continue
        target = (values.get(TARGET) or "").strip()
        rows.append(LinkRow(line, **cell, target_id=target, linked_since=started))
    return rows, errors


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("no offset")
    return value.astimezone(dt.UTC)


_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def normalized_id(record_id: str) -> str | None:
    """The id as Salesforce reads it (an 18-character id's case restored from its last three
    characters), or None when it is no Salesforce id."""
    if not is_salesforce_id(record_id) or len(record_id) == 15:
        return record_id if is_salesforce_id(record_id) else None
    suffix = record_id[15:].upper()
    if any(ch not in _SUFFIX for ch in suffix):
        return None
    chars = []
    for chunk, ch in enumerate(suffix):
        bits = _SUFFIX.index(ch)
        for pos, char in enumerate(record_id[chunk * 5 : chunk * 5 + 5]):
            upper = bool(bits & (1 << pos))
            if upper and not char.isalpha():
                return None
            chars.append(char.upper() if upper else char.lower())
    return "".join(chars) + suffix


def target_kinds(describe: Describe | None) -> dict[str, TargetType]:
    """Key prefix -> the kind of record a link points at (the external contact's from describe)."""
    prefixes = dict(STANDARD_PREFIXES)
    prefix = (describe("ExternalContact__c") if describe else {}).get("keyPrefix")
    if prefix:
        prefixes[str(prefix)] = TargetType.EXTERNAL_CONTACT
    return prefixes


def contact_ids(
    sessions: sessionmaker[Session], rows: Sequence[LinkRow]
) -> dict[tuple[str, str], str]:
    """(staff, LINE user) as the rows name them -> the LINE WORKS contact id in the store."""
    wanted = {(r.staff, r.line_user_id) for r in rows if not r.contact_id and r.staff}
    found: dict[tuple[str, str], str] = {}
    with sessions() as session:
        for batch in chunked(sorted({line_user for _, line_user in wanted}), IN_LIST_SIZE):
            query = (
                sa.select(LineContact.contact_id, LineContact.line_user_id, LineWorksUser.id)
                .add_columns(LineWorksUser.email)
                .join(LineWorksUser, LineWorksUser.id == LineContact.master_lw_user_id)
                .where(LineContact.line_user_id.in_(batch))
            )
            for contact, line_user, staff_id, email in session.execute(query):
                for staff in (staff_id, email):
                    if (staff, line_user) in wanted:
                        found[staff, line_user] = contact
    return found


def linkworks_records(query_all: QueryAll, keys: Iterable[str]) -> dict[str, Mapping[str, Any]]:
    """`LinkKey__c` -> its `LineWorks__c` (parents, tick, staff), as Salesforce holds it now."""
    found: dict[str, Mapping[str, Any]] = {}
    for chunk in chunked(sorted(set(keys)), IN_CLAUSE_SIZE):
        where = f"LinkKey__c IN ({','.join(map(quote, chunk))})"
        rows = query_all(_RECORDS_SOQL.format(where=where))
        found.update((str(row["LinkKey__c"]), row) for row in rows)
    return found


def parent_of(record: Mapping[str, Any]) -> str | None:
    """The record a `LineWorks__c` names as its target (the link sync's order of lookups)."""
    return next((str(record[name]) for name, _ in PARENTS if record.get(name)), None)


def _ticked(record: Mapping[str, Any]) -> bool:
    return str(record.get("Linked__c")).lower() == "true"


class _Checks:
    """The per-row checks of an import, each keeping the rows that pass."""

    def __init__(
        self,
        report: ImportReport,
        sessions: sessionmaker[Session],
        query_all: QueryAll,
        describe: Describe | None,
    ) -> None:
        self.report, self.sessions, self.query_all, self.describe = (
            report, sessions, query_all, describe,
        )  # fmt: skip

    def contacts(self, rows: Sequence[LinkRow]) -> list[tuple[LinkRow, str]]:
        """Rows with their contact id; unknown staff/LINE user pairs and repeats fail."""
        found = contact_ids(self.sessions, rows)
        first_line: dict[str, int] = {}
        passed = []
        for row in rows:
            contact = row.contact_id or found.get((row.staff, row.line_user_id), "")
            if not contact:
                self._no_contact(row)
            elif contact in first_line:
                self.report.fail(
                    row.line, f"contact {contact} is already on line {first_line[contact]}"
                )
            else:
                first_line[contact] = row.line
                passed.append((row, contact))
        return passed

    def _no_contact(self, row: LinkRow) -> None:
        if row.staff and row.line_user_id:
            reason = (
                "unknown contact: no LINE WORKS contact of that staff member for LINE user"
                f" {row.line_user_id}"
            )
        else:
            reason = f"no contact: give {CONTACT}, or {STAFF} and {LINE_USER}"
        self.report.fail(row.line, reason)

    def targets(self, rows: Sequence[tuple[LinkRow, str]]) -> list[Wanted]:
        """Rows whose target id is well formed and names an object a link can point at."""
        kinds = target_kinds(self.describe)
        passed = []
        for row, contact in rows:
            target = normalized_id(row.target_id)
            kind = kinds.get(target[:3]) if target else None
            if target is None:
                self.report.fail(row.line, f"malformed record id {row.target_id!r}")
            elif kind is None:
                self.report.fail(row.line, _wrong_prefix(row.target_id))
            else:
                passed.append(Wanted(row, contact, kind, target))
        return passed

    def records(self, wanted: Sequence[Wanted]) -> list[Wanted]:
        """Rows whose record is there, not a converted lead, a person account where an
        account is named."""
        person_accounts = person_accounts_enabled(self.describe)
        linked = {(w.kind, w.target_id) for w in wanted}
        placed, unresolved = resolve_customers(
            self.query_all, linked, person_accounts=person_accounts
        )
        why = {item.linked_id: item.reason for item in unresolved}
        passed = []
        for item in wanted:
            reason = why.get(item.target_id) or _converted(item, placed)
            if reason:
                self.report.fail(item.row.line, _explained(reason))
            else:
                passed.append(item)
        return passed

    def mirrored(
        self, wanted: Sequence[Wanted]
    ) -> tuple[list[Wanted], dict[str, Mapping[str, Any]]]:
        """Rows whose contact has its `LineWorks__c`, and those records."""
        records = linkworks_records(self.query_all, [w.contact_id for w in wanted])
        passed = []
        for item in wanted:
            if item.contact_id in records:
                passed.append(item)
            else:
                self.report.fail(
                    item.row.line,
                    f"unknown contact: Salesforce has no LINE WORKS record for {item.contact_id}"
                    " (the link sync mirrors each contact of the LINE WORKS directory)",
                )
        return passed, records


def _wrong_prefix(record_id: str) -> str:
    return (
        f"wrong object: {record_id} (prefix {record_id[:3]}) is not an external contact,"
        " a lead (00Q), a contact (003) or a person account (001)"
    )


def _converted(item: Wanted, placed: Mapping[str, CustomerRecord]) -> str | None:
    customer = placed.get(item.target_id)
    if item.kind is TargetType.LEAD and customer and customer.placement is Placement.CONVERTED:
        return (
            f"CONVERTED_LEAD: lead {item.target_id} was converted; link its contact"
            f" {customer.contact_id} instead"
        )
    return None


def _explained(reason: str) -> str:
    code, _, detail = reason.partition(": ")
    label = _REASONS.get(code, code.lower().replace("_", " "))
    return f"{label}: {detail}"


def link_row(item: Wanted) -> dict[str, Any]:
    """The `LineWorks__c` row of a link: its parent lookup set, the lookups the link sync would
    read before it cleared, ticked (and when a migrated link started)."""
    row: dict[str, Any] = {"LinkKey__c": item.contact_id, "Linked__c": True}
    for name, kind in PARENTS:
        if kind is item.kind:
            row[name] = item.target_id
            break
        row[name] = None
    if item.row.linked_since:
        row[LINKED_SINCE] = soql_stamp(item.row.linked_since)
    return row


def _same_link(item: Wanted, record: Mapping[str, Any]) -> bool:
    parent = parent_of(record)
    return _ticked(record) and parent is not None and parent[:15] == item.target_id[:15]


def import_links(
    path: str | Path,
    *,
    sessions: sessionmaker[Session],
    query_all: QueryAll,
    loader: BulkLoader,
    describe: Describe | None = None,
) -> ImportReport:
    """Check every row of the file, then write the links that change (one Bulk load)."""
    query_all = patient_queries(query_all, sleep=loader.sleep)
    rows, unreadable = read_rows(path)
    report = ImportReport(rows=len(rows) + len(unreadable), errors=list(unreadable))
    if any(row.linked_since for row in rows) and not has_linked_since(describe):
        for row in rows:
            if row.linked_since:
                report.fail(row.line, f"{SINCE} refused: {NO_LINKED_SINCE}")
        rows = [row for row in rows if not row.linked_since]
    checks = _Checks(report, sessions, query_all, describe)
    wanted = checks.records(checks.targets(checks.contacts(rows)))
    wanted, records = checks.mirrored(wanted)
    changes = {}
    for item in wanted:
        if _same_link(item, records[item.contact_id]):
            report.unchanged += 1
        else:
            changes[item.contact_id] = item
    _write(loader, changes, records, report)
    return report


def _write(
    loader: BulkLoader,
    changes: Mapping[str, Wanted],
    records: Mapping[str, Mapping[str, Any]],
    report: ImportReport,
) -> None:
    if not changes:
        return
    rows = [link_row(item) for item in changes.values()]
    outcome = loader.upsert("LineWorks__c", UPSERT_KEYS["LineWorks__c"], rows)
    report.load = outcome.summary()
    for key, item in changes.items():
        rejection = outcome.rejected.get(key)
        if rejection is not None:
            report.fail(item.row.line, f"rejected by Salesforce: {rejection.error_code}")
        elif _ticked(records[key]):
            report.relinked += 1
        else:
            report.linked += 1


def unlink(contact_ids_: Sequence[str], *, query_all: QueryAll, loader: BulkLoader) -> ImportReport:
    """Untick the records of these contacts ("do not link", as a rep's untick)."""
    report = ImportReport(rows=len(contact_ids_), row_label="contact")
    records = linkworks_records(query_all, contact_ids_)
    rows: dict[str, int] = {}  # contact -> its position among the arguments
    for n, contact in enumerate(contact_ids_, start=1):
        record = records.get(contact)
        if record is None:
            report.fail(n, f"unknown contact: Salesforce has no LINE WORKS record for {contact}")
        elif _ticked(record):
            rows[contact] = n
        else:
            report.unchanged += 1
    if rows:
        sent = [{"LinkKey__c": contact, "Linked__c": False} for contact in rows]
        outcome = loader.upsert("LineWorks__c", UPSERT_KEYS["LineWorks__c"], sent)
        report.load, report.unlinked = outcome.summary(), outcome.written
        for contact, rejection in outcome.rejected.items():
            report.fail(rows[contact], f"rejected by Salesforce: {rejection.error_code}")
    return report


def list_links(
    query_all: QueryAll, sessions: sessionmaker[Session], *, every: bool = False
) -> list[str]:
    """One line per `LineWorks__c` with a parent or a tick (`every`: all records): contact,
    staff (LINE WORKS user id), target, linked or unlinked, and since when (the store's, once
    the link sync has read it; else the record's last change, "sync pending")."""
    where = (
        "Id != null"
        if every
        else " OR ".join(["Linked__c = true", *(f"{name} != null" for name, _ in PARENTS)])
    )
    records = list(query_all(_RECORDS_SOQL.format(where=where)))
    with sessions() as session:
        keys = [str(r["LinkKey__c"]) for r in records]
        links = {}
        for batch in chunked(keys, IN_LIST_SIZE):
            links.update(
                (link.link_key, link)
                for link in session.scalars(sa.select(Link).where(Link.link_key.in_(batch)))
            )
        session.expunge_all()
    lines = ["contact_id\tstaff\ttarget_id\tstate\tsince (UTC)"]
    for record in records:
        lines.append(_listed(record, links.get(str(record["LinkKey__c"]))))
    return lines


def _listed(record: Mapping[str, Any], link: Link | None) -> str:
    ticked = _ticked(record)
    state = "linked" if ticked else "unlinked"
    if link is not None and link.linked is ticked:
        since = link.linked_at if ticked else link.unlinked_at
        when = f"{since:%Y-%m-%d %H:%M:%S}" if since else ""
    else:
        changed = parse_stamp(str(record["LastModifiedDate"]))
        when = f"{changed:%Y-%m-%d %H:%M:%S} (sync pending)"
    cells = (record["LinkKey__c"], record.get("LineWorksUserId__c"), parent_of(record), state, when)
    return "\t".join(str(cell or "-") for cell in cells)


# ---- the command ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Clients:
    sessions: sessionmaker[Session]
    query_all: QueryAll
    loader: BulkLoader
    describe: Describe


def _clients(args: argparse.Namespace) -> _Clients:
    """The store (`--url`) and Salesforce through the Airflow connection `--salesforce-conn`
    (an `AIRFLOW_CONN_…` variable or Airflow's metadata database), as the DAGs reach them."""
    from talklog.store import make_session_factory
    from talklog_airflow.hooks.salesforce import TalkLogSalesforceHook

    sessions = make_session_factory(args.url)
    hook = TalkLogSalesforceHook(salesforce_conn_id=args.salesforce_conn)
    loader = BulkLoader(hook.bulk_client(), sessions, dag_id="talklog links")
    return _Clients(sessions, hook.conn.query_all_iter, loader, hook.describe_object)


def _import(args: argparse.Namespace) -> None:
    clients = _clients(args)
    try:
        report = import_links(
            args.file,
            sessions=clients.sessions,
            query_all=clients.query_all,
            loader=clients.loader,
            describe=clients.describe,
        )
    except LinksFileError as error:
        sys.exit(f"links import failed: {error}")
    print(report.render())


def _list(args: argparse.Namespace) -> None:
    clients = _clients(args)
    print("\n".join(list_links(clients.query_all, clients.sessions, every=args.all)))


def _unlink(args: argparse.Namespace) -> None:
    clients = _clients(args)
    print(unlink(args.contact, query_all=clients.query_all, loader=clients.loader).render())


def add_command(commands: Any) -> None:
    """Add `links import | list | unlink` to the `talklog` command's subcommands."""
    links = commands.add_parser("links", help="links made in Salesforce: bulk link, list, unlink")
    sub = links.add_subparsers(dest="links_command", required=True)
    parsers: dict[str, tuple[Callable[[argparse.Namespace], None], str]] = {
        "import": (_import, "link contacts to records from a CSV"),
        "list": (_list, "the LINE WORKS records with a parent or a tick"),
        "unlink": (_unlink, 'untick contacts ("do not link")'),
    }
    for name, (func, text) in parsers.items():
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--url", required=True, help="SQLAlchemy URL of the store")
        cmd.add_argument(
            "--salesforce-conn", default="salesforce_default", help="Airflow connection id"
        )
        cmd.set_defaults(func=func)
        if name == "import":
            cmd.add_argument(
                "--file",
                required=True,
                help=f"CSV: {CONTACT} or {STAFF},{LINE_USER}; {TARGET}[,{SINCE}]",
            )
        elif name == "list":
            cmd.add_argument("--all", action="store_true", help="every record, unlinked ones too")
        else:
            cmd.add_argument("contact", nargs="+", help="LINE WORKS contact ids")
