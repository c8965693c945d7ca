"""Building SOQL safely: every value goes through `quote`, every id through `id_list`."""

from __future__ import annotations

import re
from collections.abc import Iterable

_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}
_SALESFORCE_ID = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")


def quote(value: str) -> str:
    """A SOQL string literal for `value`, with Salesforce's escape sequences."""
    return "'" + "".join(_ESCAPES.get(ch, ch) for ch in value) + "'"


def is_salesforce_id(value: str) -> bool:
    """True for a syntactically valid 15- or 18-character Salesforce id."""
    return bool(_SALESFORCE_ID.match(value))


def id_list(ids: Iterable[str]) -> str:
    """`('id1','id2')` for an IN clause; refuses anything that is not a Salesforce id."""
    values = list(ids)
    bad = [value for value in values if not is_salesforce_id(value)]
    if bad:
        raise ValueError(f"not Salesforce ids: {bad[:3]}")
    return "(" + ",".join(quote(value) for value in values) + ")"
