"""`talklog links import | list | unlink` (issue 18): an admin's bulk links go through the same
Salesforce path as a rep's click, run as the command (`talklog.cli.main`) against the HTTPS
emulator through the Airflow connection; the link sync reads them back."""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from talklog.cli import main
from talklog.loading import BulkLoader
from talklog.salesforce_links import SalesforceLinkSummary, sync_salesforce_links
from talklog.store import make_session_factory
from talklog.store.migrate import upgrade
from talklog.store.models import LineContact, LineUser, LineWorksUser, Link, LinkPeriod
from tests.integration.talklog_world import direct_clients

GOOD = 1000
KINDS = {  # the records good rows link to, a quarter each
    "ExternalContact__c": {"Name": "顧客"},
    "Lead": {"LastName": "顧客", "Company": "顧客商店"},
    "Contact": {"LastName": "顧客"},
    "Account": {"LastName": "顧客"},  # a person account
}
SINCE = dt.datetime(2025, 6, 1, 9, 30, tzinfo=dt.UTC)
STAFF_EMAIL = "suzuki@talklog.example"
REPORT_STARTS = ("rows ", "contact_id\t")


@dataclass
class Admin:
    emulator: Any
    url: str
    sessions: sessionmaker[Session]
    loader: BulkLoader
    query_all: Any
    tmp: Path

    def run(self, capsys: pytest.CaptureFixture[str], *args: str) -> str:
        """The command's report (the log lines that Airflow's logging puts before it left out)."""
        capsys.readouterr()
        main(["links", *args, "--url", self.url])
        lines = capsys.readouterr().out.splitlines()
        start = next(n for n, line in enumerate(lines) if line.startswith(REPORT_STARTS))
        return "\n".join(lines[start:])

    def sync(self) -> SalesforceLinkSummary:
        return sync_salesforce_links(
            sessions=self.sessions, query_all=self.query_all, loader=self.loader
        )

    def write_csv(self, rows: list[dict[str, str]]) -> str:
        path = self.tmp / "links.csv"
        columns = ["contact_id", "staff", "line_user_id", "target_id", "linked_since"]
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, columns)
            writer.writeheader()
            writer.writerows(rows)
        return str(path)


def contact(n: int) -> str:
    return f"contact-{n:04d}"


@pytest.fixture
def admin(salesforce_conn_env, sqlite_url, tmp_path) -> Admin:
    """Suzuki's 1,020 LINE contacts in the store, mirrored into Salesforce by a first sync."""
    upgrade(sqlite_url)
    sessions = make_session_factory(sqlite_url)
    with sessions.begin() as session:
        session.add(LineWorksUser(id="lw-suzuki", display_name="鈴木", email=STAFF_EMAIL))
        session.add_all(LineUser(id=f"U{n:04d}", display_name=f"客{n}") for n in range(1020))
        session.flush()
        session.add_all(
            LineContact(
                contact_id=contact(n),
                line_user_id=f"U{n:04d}",
                master_lw_user_id="lw-suzuki",
                display_name=f"客{n}様",
            )
            for n in range(1020)
        )
    clients = direct_clients(salesforce_conn_env)
    loader = BulkLoader(clients.bulk, sessions, sleep=lambda _: None)
    found = Admin(salesforce_conn_env, sqlite_url, sessions, loader, clients.query_all, tmp_path)
    assert found.sync().mirror["created_or_changed"] == 1020
    return found


def good_rows(emulator: Any) -> list[dict[str, str]]:
    """1,000 rows: by contact id, every other one by (staff account, LINE user); some migrated."""
    per_kind = GOOD // len(KINDS)
    targets = [
        record_id
        for name, values in KINDS.items()
        for record_id in emulator.create_records(name, [values] * per_kind)
    ]
    rows = []
    for n, target in enumerate(targets):
        row = {"target_id": target}
        if n % 2:
            row |= {"staff": STAFF_EMAIL, "line_user_id": f"U{n:04d}"}
        else:
            row |= {"contact_id": contact(n)}
        if n % 100 == 0:
            row["linked_since"] = SINCE.isoformat()
        rows.append(row)
    return rows


def bad_rows(emulator: Any) -> list[tuple[dict[str, str], str]]:
    """Ten rows, each with the reason its error names; contacts 1000.. are mirrored."""
    sf = emulator.salesforce()
    deleted = emulator.create_record("ExternalContact__c", Name="消えた")
    sf.ExternalContact__c.delete(deleted)
    lead = emulator.create_record("Lead", LastName="変換", Company="変換商店")
    converted = emulator.convert_lead(lead)
    business = emulator.create_record("Account", Name="株式会社")
    user = emulator.create_record("User", Username="rep@talklog.example", LastName="Rep")
    ok = emulator.create_record("Contact", LastName="顧客")
    bad_suffix = ok[:15] + "999"  # 6 to 9 are no suffix characters
    return [
        ({"contact_id": "contact-unknown", "target_id": ok}, "unknown contact"),
        ({"staff": STAFF_EMAIL, "line_user_id": "U-nobody", "target_id": ok}, "unknown contact"),
        ({"contact_id": contact(1000), "target_id": "12345"}, "malformed record id"),
        ({"contact_id": contact(1001), "target_id": bad_suffix}, "malformed record id"),
        ({"contact_id": contact(1002), "target_id": deleted}, "deleted record"),
        (
            {"contact_id": contact(1003), "target_id": lead},
            f"converted lead: lead {lead} was converted; link its contact {converted['contactId']}",
        ),
        ({"contact_id": contact(1004), "target_id": user}, "wrong object"),
        ({"contact_id": contact(1005), "target_id": business}, "wrong object"),
        ({"contact_id": contact(0), "target_id": ok}, "contact contact-0000 is already on line"),
        (
            {"contact_id": contact(1006), "target_id": ok, "linked_since": "yesterday"},
            "malformed linked_since",
        ),
    ]


def api_calls(emulator: Any) -> int:
    return int(emulator.stats()["daily_api_requests"]["used"])


def stamps(emulator: Any) -> dict[str, str]:
    return {r["LinkKey__c"]: r["SystemModstamp"] for r in emulator.records("LineWorks__c")}


def test_a_thousand_good_and_ten_bad_rows(admin: Admin, capsys) -> None:
    good = good_rows(admin.emulator)
    bad = bad_rows(admin.emulator)
    rows = good[:500] + [row for row, _ in bad] + good[500:]
    path = admin.write_csv(rows)

    calls = api_calls(admin.emulator)
    out = admin.run(capsys, "import", "--file", path)
    assert api_calls(admin.emulator) - calls < 50  # per 300 rows, not per row (35 measured)
    assert out.splitlines()[0] == (
        "rows 1010, linked 1000, relinked 0, unlinked 0, unchanged 0, errors 10"
    ), out
    for n, (_, reason) in enumerate(bad):
        line = 2 + 500 + n  # the header is line 1
        assert any(text.startswith(f"line {line}: {reason}") for text in out.splitlines()), (
            line,
            reason,
            out,
        )
    assert "顧客" not in out and "客" not in out  # ids only, never a name
    ticked = [r for r in admin.emulator.records("LineWorks__c") if r["Linked__c"]]
    assert len(ticked) == GOOD

    before = stamps(admin.emulator)
    calls, jobs = api_calls(admin.emulator), admin.emulator.stats()["bulk_jobs"]["ingest"]
    again = admin.run(capsys, "import", "--file", path)
    assert admin.emulator.stats()["bulk_jobs"]["ingest"] == jobs  # it only read
    assert api_calls(admin.emulator) - calls <= 12  # describe twice, 8 queries (10 measured)
    assert again.splitlines()[0] == (
        "rows 1010, linked 0, relinked 0, unlinked 0, unchanged 1000, errors 10"
    ), again
    assert stamps(admin.emulator) == before  # nothing written

    summary = admin.sync()
    assert summary.linked == GOOD and summary.parent_uuids["filled"] == GOOD, summary
    with admin.sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).where(Link.linked.is_(True))) == GOOD
        migrated = session.scalars(
            sa.select(LinkPeriod.started_at).join(Link).where(Link.link_key == contact(100))
        ).all()
    assert migrated == [SINCE]  # the migrated link's period starts at linked_since


def test_list_and_unlink(admin: Admin, capsys) -> None:
    target = admin.emulator.create_record("Contact", LastName="顧客")
    path = admin.write_csv([{"contact_id": contact(7), "target_id": target}])
    admin.run(capsys, "import", "--file", path)
    listed = admin.run(capsys, "list").splitlines()
    assert listed[0].split("\t")[:4] == ["contact_id", "staff", "target_id", "state"]
    (row,) = listed[1:]
    assert row.split("\t")[:4] == [contact(7), "lw-suzuki", target, "linked"]
    assert row.endswith("(sync pending)")
    admin.sync()
    (row,) = admin.run(capsys, "list").splitlines()[1:]
    assert "pending" not in row

    out = admin.run(capsys, "unlink", contact(7), "contact-unknown")
    assert out.splitlines()[0].startswith("rows 2, linked 0, relinked 0, unlinked 1, unchanged 0")
    assert "contact 2: unknown contact" in out
    assert admin.sync().unlinked == 1
    (row,) = admin.run(capsys, "list").splitlines()[1:]
    assert row.split("\t")[3] == "unlinked"  # the parent stays, as after a rep's untick
    assert admin.run(capsys, "unlink", contact(7)).startswith(
        "rows 1, linked 0, relinked 0, unlinked 0, unchanged 1"
    )


def test_a_file_without_the_columns_is_refused(admin: Admin, tmp_path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("name,record\n山田,003000000000001\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="the header needs target_id"):
        main(["links", "import", "--url", admin.url, "--file", str(path)])
