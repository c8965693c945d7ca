"""Validation rules of the org: the emulator switch ``validation_rules`` (PUT faults).

A rule is what an admin writes in Setup, reduced to one declarative condition on one field:
the object, the condition (``equals`` a value, ``is_blank``, ``longer_than`` N characters,
``contains`` a substring: Salesforce's ``=``, ``ISBLANK``, ``LEN(f) > N``, ``CONTAINS``), the
error message and the optional error field (none: "top of page"). An active rule that a row
meets refuses it with ``FIELD_CUSTOM_VALIDATION_EXCEPTION``, on insert and update alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from talklog_dev.emulator.schema import Field, Schema, SObject
from talklog_dev.emulator.values import TEXT_TYPES, FieldValueError, coerce

Condition = Literal["equals", "is_blank", "longer_than", "contains"]
TEXT_CONDITIONS = frozenset({"longer_than", "contains"})


class ValidationRule(BaseModel):
    """One validation rule (``errorConditionFormula`` as one condition)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    object: str
    field: str
    condition: Condition
    value: str | int | float | bool | None = None
    message: str
    error_field: str | None = None
    """``errorDisplayField``; None shows the message at the top of the page (no fields)."""
    name: str = "Emulator_Rule"
    active: bool = True

    @model_validator(mode="after")
    def _value_fits_condition(self) -> ValidationRule:
        if self.condition == "is_blank" and self.value is not None:
            raise ValueError("is_blank takes no value")
        if self.condition == "longer_than" and (
            not isinstance(self.value, int) or isinstance(self.value, bool) or self.value < 0
        ):
            raise ValueError("longer_than takes a number of characters (0 or more)")
        if self.condition == "contains" and not (isinstance(self.value, str) and self.value):
            raise ValueError("contains takes a non-empty text")
        if self.condition == "equals" and self.value is None:
            raise ValueError("equals takes a value (is_blank tests for no value)")
        return self

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Whether the row meets the error condition (the rule refuses it)."""
        value = record.get(self.field)
        if self.condition == "is_blank":
            return value is None or value == ""
        if self.condition == "equals":
            return value == self.value
        if not isinstance(value, str):
            return False
        if self.condition == "contains":
            return str(self.value) in value
        return len(value) > int(self.value)  # type: ignore[arg-type]


def compile_rules(
    schema: Schema, specs: Iterable[Mapping[str, Any]] | None
) -> tuple[ValidationRule, ...]:
    """The active rules, with the API names of their object and fields, values coerced like the
    field's; ``ValueError`` names what is wrong with a rule."""
    rules = []
    for number, spec in enumerate(specs or (), start=1):
        try:
            rule = ValidationRule.model_validate(spec)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'rule'}: {e['msg']}" for e in exc.errors()
            )
            raise ValueError(f"validation rule {number}: {problems}") from None
        if rule.active:
            rules.append(_bound(schema, rule, number))
    return tuple(rules)


def _bound(schema: Schema, rule: ValidationRule, number: int) -> ValidationRule:
    obj = schema.get(rule.object)
    if obj is None:
        raise ValueError(f"validation rule {number}: no object {rule.object}")
    field = _field(obj, rule.field, number)
    shown = _field(obj, rule.error_field, number).name if rule.error_field else None
    if rule.condition in TEXT_CONDITIONS and field.type not in TEXT_TYPES:
        raise ValueError(f"validation rule {number}: {rule.condition} needs a text field")
    value = rule.value
    if rule.condition == "equals":
        try:
            value = coerce(field, value)  # type: ignore[assignment]
        except FieldValueError as exc:
            raise ValueError(f"validation rule {number}: {exc.message}") from None
    changes = {"object": obj.name, "field": field.name, "error_field": shown, "value": value}
    return rule.model_copy(update=changes)


def _field(obj: SObject, name: str, number: int) -> Field:
    found = obj.field(name)
    if found is None:
        raise ValueError(f"validation rule {number}: no field {name} on {obj.name}")
    return found
