"""Field values in Salesforce's wire form: coercion from JSON and CSV input, canonical text."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

from talklog_dev.emulator.schema import Field

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
TEXT_TYPES = frozenset(
    {"string", "textarea", "url", "email", "phone", "picklist", "combobox", "multipicklist"}
)
NUMBER_TYPES = frozenset({"double", "currency", "percent", "int"})
LONG_TEXT_MAX = 131_072
"""No Salesforce text field holds more: the cap for a text field whose metadata has no length."""


class FieldValueError(ValueError):
    """A value that does not fit its field; carries the Salesforce error code."""

    def __init__(self, code: str, message: str, field: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def format_datetime(value: dt.datetime) -> str:
    """Salesforce's datetime text: ``2024-01-09T00:00:00.000+0000`` (UTC)."""
    value = value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def parse_datetime(text: str) -> dt.datetime:
    """Parse ISO 8601 datetimes as Salesforce accepts them (Z, +09:00, +0900, or no zone = UTC)."""
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    match = re.search(r"([+-])(\d{2})(\d{2})$", value)
    if match and value[-5] in "+-" and ":" not in value[-5:]:
        value = value[:-5] + f"{match.group(1)}{match.group(2)}:{match.group(3)}"
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def coerce(field: Field, value: object, *, from_csv: bool = False) -> object:
    """The stored form of a value for a field; :class:`FieldValueError` if it does not fit."""
    if value is None:
        return None
    kind = field.type
    if kind == "picklist":
        return _picklist(field, _text(field, value))
    if kind in TEXT_TYPES or kind == "id":
        return _text(field, value)
    if kind == "reference":
        return value if isinstance(value, str) else _bad(field, value)
    if kind == "boolean":
        return _boolean(field, value)
    if kind in NUMBER_TYPES:
        return _number(field, value)
    if kind == "date":
        return _date(field, value)
    if kind == "datetime":
        return _datetime(field, value)
    return value


def _bad(field: Field, value: object) -> object:
    raise FieldValueError(
        "INVALID_TYPE_ON_FIELD_IN_RECORD",
        f"{field.label}: value not of required type: {value}",
        field.name,
    )


def _text(field: Field, value: object) -> str:
    if isinstance(value, bool | dict | list):
        _bad(field, value)
    text = value if isinstance(value, str) else str(value)
    limit = field.length or LONG_TEXT_MAX
    if len(text) > limit:
        shown = text[:20] + "..." if len(text) > 20 else text
        raise FieldValueError(
            "STRING_TOO_LONG",
            f"{field.label}: data value too large: {shown} (max length={limit})",
            field.name,
        )
    return text


def _picklist(field: Field, text: str) -> str:
    """A restricted picklist takes only its active values (exactly as defined)."""
    allowed = {v.value for v in field.picklist_values if v.active}
    if field.restricted_picklist and text not in allowed:
        raise FieldValueError(
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            f"{field.label}: bad value for restricted picklist field: {text}",
            field.name,
        )
    return text


def _boolean(field: Field, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    _bad(field, value)
    raise AssertionError  # unreachable


def _number(field: Field, value: object) -> float | int:
    if isinstance(value, bool):
        _bad(field, value)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        _bad(field, value)
        raise
    _check_range(field, value, number)
    return int(number) if field.scale == 0 and number.is_integer() else number


def _check_range(field: Field, value: object, number: float) -> None:
    """At most precision - scale digits before the point (the API keeps extra decimals)."""
    if field.precision is None:
        return
    try:
        exact = Decimal(value.strip() if isinstance(value, str) else value)  # type: ignore[arg-type]
    except (InvalidOperation, TypeError, ValueError):
        exact = Decimal(number)
    if not exact.is_finite() or abs(exact) >= Decimal(10) ** (field.precision - (field.scale or 0)):
        raise FieldValueError(
            "NUMBER_OUTSIDE_VALID_RANGE",
            f"{field.label}: value outside of valid range on numeric field: {number}",
            field.name,
        )


def _date(field: Field, value: object) -> str:
    if isinstance(value, str):
        text = value.strip()
        if _DATE_RE.match(text):
            try:
                dt.date.fromisoformat(text)
                return text
            except ValueError:
                pass
        try:
            return parse_datetime(text).date().isoformat()
        except ValueError:
            pass
    _bad(field, value)
    raise AssertionError  # unreachable


def _datetime(field: Field, value: object) -> str:
    if isinstance(value, str):
        try:
            if _DATE_RE.match(value.strip()):
                return format_datetime(dt.datetime.fromisoformat(value.strip()))
            return format_datetime(parse_datetime(value))
        except ValueError:
            pass
    _bad(field, value)
    raise AssertionError  # unreachable


def to_csv_text(value: object) -> str:
    """A stored value as Bulk API CSV text (null is the empty string)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(value)
    return str(value)
