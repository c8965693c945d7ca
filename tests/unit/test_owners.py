"""Who owns a staff member's Tasks: one bulk question about active users, then per staff."""

from __future__ import annotations

import pytest

from talklog.owners import (
    IN_CLAUSE_SIZE,
    MATCH_ENV,
    OwnerFallback,
    OwnerMatch,
    owner_match,
    staff_owners,
)
from talklog.salesforce.failures import row_error, without_refused_owner
from talklog.salesforce.soql import quote

ACTIVE = "005000000000001AAA"
INACTIVE = "005000000000002AAA"


def active_users(*active):
    """A query function that answers the active-user query from `active` (plain data)."""
    asked: list[str] = []

    def query_all(soql):
        asked.append(soql)
        assert soql.startswith("SELECT Id FROM User WHERE IsActive = true AND Id IN (")
        return [{"Id": user} for user in active if f"'{user}'" in soql or f"'{user[:15]}'" in soql]

    return query_all, asked


def test_staff_get_their_active_user_or_the_integration_user_with_a_reason():
    query_all, asked = active_users(ACTIVE)
    staff = {"lw-a": ACTIVE, "lw-b": INACTIVE, "lw-c": None, "lw-d": "not an id'", "lw-e": ACTIVE}
    owners = staff_owners(query_all, staff)
    assert len(asked) == 1
    assert owners.owner_ids == {
        "lw-a": ACTIVE,
        "lw-b": None,
        "lw-c": None,
        "lw-d": None,
        "lw-e": ACTIVE,
    }
    assert owners.fallbacks == {
        "lw-b": OwnerFallback.NOT_AN_ACTIVE_USER,
        "lw-c": OwnerFallback.NO_SALESFORCE_USER,
        "lw-d": OwnerFallback.NOT_AN_ACTIVE_USER,
    }
    assert "not an id" not in asked[0]


def test_fifteen_character_ids_match_the_users_salesforce_returns():
    query_all, _ = active_users(ACTIVE)
    owners = staff_owners(query_all, {"lw-a": ACTIVE[:15]})
    assert owners.owner_ids == {"lw-a": ACTIVE[:15]} and owners.fallbacks == {}


@pytest.mark.parametrize("users", [0, 1, IN_CLAUSE_SIZE, IN_CLAUSE_SIZE + 1, 2 * IN_CLAUSE_SIZE])
def test_users_are_asked_about_in_chunks(users):
    ids = [f"005{n:012d}AAA" for n in range(users)]
    query_all, asked = active_users(*ids)
    owners = staff_owners(query_all, {f"lw-{n}": user for n, user in enumerate(ids)})
    assert len(asked) == -(-users // IN_CLAUSE_SIZE)
    assert all(owner is not None for owner in owners.owner_ids.values())


def test_tasks_and_staff_are_counted_per_reason_without_names():
    query_all, _ = active_users(ACTIVE)
    owners = staff_owners(query_all, {"lw-a": ACTIVE, "lw-b": INACTIVE, "lw-c": None})
    for lw_user_id in ("lw-a", "lw-b", "lw-b", "lw-c"):
        owners.count_task(lw_user_id)
    owners.count_refused(2)
    owners.count_refused(0)
    assert owners.tasks_by_reason() == {
        "no_salesforce_user": 1,
        "not_an_active_user": 2,
        "refused_as_inactive": 2,
    }
    assert owners.staff_by_reason() == {
        "no_salesforce_user": ["lw-c"],
        "not_an_active_user": ["lw-b"],
    }


@pytest.mark.parametrize(
    ("error", "row", "resent"),
    [
        ("INACTIVE_OWNER_OR_USER:operation performed with inactive user [x] as owner of task: --",
         {"K": "1", "OwnerId": INACTIVE}, {"K": "1", "OwnerId": ""}),
        ("INACTIVE_OWNER_OR_USER:inactive --", {"K": "1", "OwnerId": ""}, None),
        ("INACTIVE_OWNER_OR_USER:inactive --", {"K": "1"}, None),
        ("UNABLE_TO_LOCK_ROW:locked --", {"K": "1", "OwnerId": ACTIVE}, None),
        ("INVALID_CROSS_REFERENCE_KEY:bad:OwnerId --", {"K": "1", "OwnerId": ACTIVE}, None),
    ],
)  # fmt: skip
def test_only_rows_refused_for_their_owner_are_resent_and_without_it(error, row, resent):
    assert without_refused_owner(row_error(error), row) == resent


# --- owners by email or Federation ID (TALKLOG_OWNER_MATCH) -----------------------------------


def users_by(field, users):
    """A query function answering the active-user query on `field` from `users` (Id -> value),
    matching like SOQL does (case-insensitive); records each query."""
    asked: list[str] = []

    def query_all(soql):
        asked.append(soql)
        prefix = f"SELECT Id, {field} FROM User WHERE IsActive = true AND {field} IN ("
        assert soql.startswith(prefix), soql
        wanted = soql.removeprefix(prefix).casefold()
        return [
            {"Id": user, field: value}
            for user, value in users.items()
            if quote(value.casefold()) in wanted
        ]

    return query_all, asked


@pytest.mark.parametrize(
    ("match", "field"),
    [(OwnerMatch.EMAIL, "Email"), (OwnerMatch.FEDERATION_ID, "FederationIdentifier")],
)
def test_staff_get_the_active_user_with_their_login_email(match, field):
    query_all, asked = users_by(
        field,
        {
            ACTIVE: "Sato@Example.co.jp",  # case differs from the directory's
            INACTIVE: "nobody@example.co.jp",
            "005000000000003AAA": "twice@example.co.jp",
            "005000000000004AAA": "twice@example.co.jp",
        },
    )
    staff = {"lw-a": INACTIVE, "lw-b": ACTIVE, "lw-c": None, "lw-d": ACTIVE, "lw-e": None}
    emails = {
        "lw-a": "sato@example.co.jp",  # the store's id is ignored: the email decides
        "lw-b": "gone@example.co.jp",
        "lw-c": None,
        "lw-d": "twice@example.co.jp",
        "lw-e": "sato@example.co.jp",
    }
    owners = staff_owners(query_all, staff, emails=emails, match=match)
    assert len(asked) == 1
    assert owners.owner_ids == {
        "lw-a": ACTIVE,
        "lw-b": None,
        "lw-c": None,
        "lw-d": None,
        "lw-e": ACTIVE,
    }
    assert owners.fallbacks == {
        "lw-b": OwnerFallback.NOT_AN_ACTIVE_USER,
        "lw-c": OwnerFallback.NO_EMAIL,
        "lw-d": OwnerFallback.SEVERAL_ACTIVE_USERS,
    }


@pytest.mark.parametrize(
    "email",
    [
        "o'brien@example.co.jp",
        "back\\slash@example.co.jp",
        'quote"d@example.co.jp',
        "x') OR Id != ('",
    ],
)
def test_emails_are_escaped_in_the_query(email):
    query_all, asked = users_by("Email", {ACTIVE: email})
    owners = staff_owners(query_all, {"lw-a": None}, emails={"lw-a": email}, match=OwnerMatch.EMAIL)
    assert quote(email.casefold()) in asked[0]  # SOQL compares emails ignoring case
    assert asked[0].count(" IN (") == 1 and asked[0].endswith(")")
    assert owners.owner_ids == {"lw-a": ACTIVE}


@pytest.mark.parametrize(
    "users", [0, 1, IN_CLAUSE_SIZE, IN_CLAUSE_SIZE + 1, 2 * IN_CLAUSE_SIZE + 5]
)
def test_emails_are_asked_about_in_chunks(users):
    ids = {f"005{n:012d}AAA": f"staff{n}@example.co.jp" for n in range(users)}
    query_all, asked = users_by("Email", ids)
    emails = {f"lw-{n}": email for n, email in enumerate(ids.values())}
    owners = staff_owners(query_all, dict.fromkeys(emails), emails=emails, match=OwnerMatch.EMAIL)
    assert len(asked) == -(-users // IN_CLAUSE_SIZE)
    assert all(owner is not None for owner in owners.owner_ids.values())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, OwnerMatch.STORE_ID),  # the default: what the store says
        ("", OwnerMatch.STORE_ID),
        ("email", OwnerMatch.EMAIL),
        (" Federation_ID ", OwnerMatch.FEDERATION_ID),
        ("store_id", OwnerMatch.STORE_ID),
    ],
)
def test_the_setting_names_one_way_and_defaults_to_the_store(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv(MATCH_ENV, raising=False)
    else:
        monkeypatch.setenv(MATCH_ENV, value)
    assert owner_match() == expected


@pytest.mark.parametrize("value", ["mail", "username", "1"])
def test_an_unknown_setting_is_refused_with_the_choices(monkeypatch, value):
    monkeypatch.setenv(MATCH_ENV, value)
    with pytest.raises(
        ValueError, match="TALKLOG_OWNER_MATCH must be one of store_id, email, federation_id"
    ):
        owner_match()


def test_the_store_id_way_never_asks_by_email():
    query_all, asked = active_users(ACTIVE)
    owners = staff_owners(
        query_all, {"lw-a": ACTIVE}, emails={"lw-a": "a@example.co.jp"}, match=OwnerMatch.STORE_ID
    )
    assert owners.owner_ids == {"lw-a": ACTIVE} and len(asked) == 1
