"""A SOQL subset: a lark grammar, a parse tree -> query model transformer, and an evaluator."""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import LarkError, VisitError

from talklog_dev.emulator.ids import normalize_id
from talklog_dev.emulator.schema import Field, Schema, SObject
from talklog_dev.emulator.values import NUMBER_TYPES, TEXT_TYPES, format_datetime, parse_datetime

CASE_SENSITIVE = "case-sensitive"
"""The match kind of a unique case-sensitive text field: compared exactly, not folded."""

GRAMMAR = r"""
start: query
query: _SELECT select_list _FROM NAME where_clause? order_clause? limit_clause? offset_clause?
subquery: _SELECT path _FROM NAME where_clause?
select_list: select_item ("," select_item)*
?select_item: path
            | _COUNT "(" ")"                    -> count
path: NAME ("." NAME)*
where_clause: _WHERE condition
?condition: or_cond
?or_cond: and_cond (_OR and_cond)*
?and_cond: not_cond (_AND not_cond)*
?not_cond: _NOT not_cond                        -> not_
         | atom
?atom: "(" condition ")"
     | path COMP_OP value                       -> compare
     | path _IN "(" value ("," value)* ")"      -> in_
     | path _NOT _IN "(" value ("," value)* ")" -> not_in
     | path _IN "(" subquery ")"                -> in_sub
     | path _NOT _IN "(" subquery ")"           -> not_in_sub
     | path _LIKE STRING                        -> like
?value: STRING                                  -> string
      | SIGNED_NUMBER                           -> number
      | _TRUE                                   -> true
      | _FALSE                                  -> false
      | _NULL                                   -> null
      | DATETIME                                -> datetime
      | DATE                                    -> date
      | DATE_LITERAL                            -> date_literal
order_clause: _ORDER _BY order_item ("," order_item)*
order_item: path DIRECTION? nulls?
nulls: _NULLS NULLS_WHERE
limit_clause: _LIMIT INT
offset_clause: _OFFSET INT

_SELECT.2: /select\b/i
_FROM.2: /from\b/i
_WHERE.2: /where\b/i
_COUNT.2: /count\b/i
_OR.2: /or\b/i
_AND.2: /and\b/i
_NOT.2: /not\b/i
_IN.2: /in\b/i
_LIKE.2: /like\b/i
_TRUE.2: /true\b/i
_FALSE.2: /false\b/i
_NULL.2: /null\b/i
_ORDER.2: /order\b/i
_BY.2: /by\b/i
_LIMIT.2: /limit\b/i
_OFFSET.2: /offset\b/i
_NULLS.2: /nulls\b/i
NULLS_WHERE.2: /(first|last)\b/i
DIRECTION.2: /(asc|desc)\b/i
DATE_LITERAL.3: /(today|yesterday|tomorrow|last_90_days|next_90_days)\b/i
              | /(this|last|next)_(week|month|year)\b/i
              | /(last_n|next_n)_(days|weeks|months)\s*:\s*\d+/i
              | /n_(days|months)_ago\s*:\s*\d+/i
DATETIME.3: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})/
DATE.3: /\d{4}-\d{2}-\d{2}(?![T\d])/
STRING: /'(?:[^'\\]|\\.)*'/
COMP_OP: "!=" | "<>" | "<=" | ">=" | "=" | "<" | ">"
NAME: /[A-Za-z_][A-Za-z0-9_]*/
%import common.SIGNED_NUMBER
%import common.INT
%import common.WS
%ignore WS
"""

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "'": "'", '"': '"', "\\": "\\"}


class SoqlError(Exception):
    """A query Salesforce would reject; ``code`` is the errorCode of the 400 response."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class DateRange:
    """A relative date literal (TODAY, LAST_N_DAYS:7, ...) as the half-open range it names."""

    text: str
    start: dt.date
    end: dt.date


@dataclass(frozen=True)
class Literal:
    kind: str  # string, number, boolean, null, date, datetime, date_range
    value: Any


@dataclass(frozen=True)
class Compare:
    path: tuple[str, ...]
    op: str
    value: Literal


@dataclass(frozen=True)
class InList:
    path: tuple[str, ...]
    values: tuple[Literal, ...]
    negated: bool


@dataclass(frozen=True)
class InQuery:
    path: tuple[str, ...]
    query: Query
    negated: bool


@dataclass(frozen=True)
class Like:
    path: tuple[str, ...]
    pattern: str


@dataclass(frozen=True)
class BoolOp:
    op: str  # and, or, not
    parts: tuple[Any, ...]


@dataclass(frozen=True)
class OrderItem:
    path: tuple[str, ...]
    descending: bool
    nulls_last: bool


@dataclass(frozen=True)
class Query:
    """A parsed SOQL query."""

    fields: tuple[tuple[str, ...], ...]
    sobject: str
    where: Any = None
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    offset: int | None = None
    count_only: bool = False


def _unquote(token: str) -> str:
    body = token[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), body)


def date_range(text: str, today: dt.date) -> DateRange:
    """The half-open date range a SOQL date literal names, relative to ``today``."""
    name, _, arg = text.upper().replace(" ", "").partition(":")
    n = int(arg) if arg else 0
    day = dt.timedelta(days=1)
    week_start = today - dt.timedelta(days=(today.weekday() + 1) % 7)  # weeks start on Sunday
    month_start = today.replace(day=1)
    ranges: dict[str, Callable[[], tuple[dt.date, dt.date]]] = {
        "TODAY": lambda: (today, today + day),
        "YESTERDAY": lambda: (today - day, today),
        "TOMORROW": lambda: (today + day, today + 2 * day),
        "THIS_WEEK": lambda: (week_start, week_start + 7 * day),
        "LAST_WEEK": lambda: (week_start - 7 * day, week_start),
        "NEXT_WEEK": lambda: (week_start + 7 * day, week_start + 14 * day),
        "THIS_MONTH": lambda: (month_start, _add_months(month_start, 1)),
        "LAST_MONTH": lambda: (_add_months(month_start, -1), month_start),
        "NEXT_MONTH": lambda: (_add_months(month_start, 1), _add_months(month_start, 2)),
        "THIS_YEAR": lambda: (dt.date(today.year, 1, 1), dt.date(today.year + 1, 1, 1)),
        "LAST_YEAR": lambda: (dt.date(today.year - 1, 1, 1), dt.date(today.year, 1, 1)),
        "NEXT_YEAR": lambda: (dt.date(today.year + 1, 1, 1), dt.date(today.year + 2, 1, 1)),
        "LAST_90_DAYS": lambda: (today - 90 * day, today + day),
        "NEXT_90_DAYS": lambda: (today + day, today + 91 * day),
        "LAST_N_DAYS": lambda: (today - n * day, today + day),
        "NEXT_N_DAYS": lambda: (today + day, today + (n + 1) * day),
        "N_DAYS_AGO": lambda: (today - n * day, today - (n - 1) * day),
        "LAST_N_WEEKS": lambda: (week_start - 7 * n * day, week_start),
        "NEXT_N_WEEKS": lambda: (week_start + 7 * day, week_start + 7 * (n + 1) * day),
        "LAST_N_MONTHS": lambda: (_add_months(month_start, -n), month_start),
        "NEXT_N_MONTHS": lambda: (_add_months(month_start, 1), _add_months(month_start, n + 1)),
        "N_MONTHS_AGO": lambda: (_add_months(month_start, -n), _add_months(month_start, 1 - n)),
    }
    start, end = ranges[name]()
    return DateRange(text, start, end)


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


@v_args(inline=True)
class _ToModel(Transformer):
    def __init__(self, today: dt.date) -> None:
        super().__init__()
        self.today = today

    def start(self, query: Query) -> Query:
        return query

    def query(self, select: list, name: Token, *clauses: tuple[str, Any]) -> Query:
        parts = dict(clauses)
        count_only = "count" in select
        fields = tuple(p for p in select if p != "count")
        if count_only and fields:
            raise SoqlError("MALFORMED_QUERY", "COUNT() cannot be combined with other fields")
        return Query(
            fields=fields,
            sobject=str(name),
            where=parts.get("where"),
            order_by=parts.get("order", ()),
            limit=parts.get("limit"),
            offset=parts.get("offset"),
            count_only=count_only,
        )

    def subquery(self, path: tuple[str, ...], name: Token, where: Any = None) -> Query:
        return Query(fields=(path,), sobject=str(name), where=where and where[1])

    def select_list(self, *items: Any) -> list:
        return list(items)

    def count(self) -> str:
        return "count"

    def path(self, *names: Token) -> tuple[str, ...]:
        return tuple(str(n) for n in names)

    def where_clause(self, condition: Any) -> tuple[str, Any]:
        return ("where", condition)

    def or_cond(self, *parts: Any) -> BoolOp:
        return BoolOp("or", parts)

    def and_cond(self, *parts: Any) -> BoolOp:
        return BoolOp("and", parts)

    def not_(self, part: Any) -> BoolOp:
        return BoolOp("not", (part,))

    def compare(self, path: tuple[str, ...], op: Token, value: Literal) -> Compare:
        return Compare(path, "!=" if str(op) == "<>" else str(op), value)

    def in_(self, path: tuple[str, ...], *values: Literal) -> InList:
        return InList(path, values, negated=False)

    def not_in(self, path: tuple[str, ...], *values: Literal) -> InList:
        return InList(path, values, negated=True)

    def in_sub(self, path: tuple[str, ...], query: Query) -> InQuery:
        return InQuery(path, query, negated=False)

    def not_in_sub(self, path: tuple[str, ...], query: Query) -> InQuery:
        return InQuery(path, query, negated=True)

    def like(self, path: tuple[str, ...], pattern: Token) -> Like:
        return Like(path, _unquote(str(pattern)))

    def string(self, token: Token) -> Literal:
        return Literal("string", _unquote(str(token)))

    def number(self, token: Token) -> Literal:
        return Literal("number", float(token))

    def true(self) -> Literal:
        return Literal("boolean", True)

    def false(self) -> Literal:
        return Literal("boolean", False)

    def null(self) -> Literal:
        return Literal("null", None)

    def datetime(self, token: Token) -> Literal:
        return Literal("datetime", format_datetime(parse_datetime(str(token))))

    def date(self, token: Token) -> Literal:
        return Literal("date", str(token))

    def date_literal(self, token: Token) -> Literal:
        return Literal("date_range", date_range(str(token), self.today))

    def order_clause(self, *items: OrderItem) -> tuple[str, Any]:
        return ("order", items)

    def order_item(self, path: tuple[str, ...], *rest: Any) -> OrderItem:
        descending = any(isinstance(r, Token) and str(r).lower() == "desc" for r in rest)
        nulls = next((r for r in rest if isinstance(r, str) and r in ("first", "last")), None)
        return OrderItem(path, descending, nulls_last=(nulls == "last") if nulls else descending)

    def nulls(self, where: Token) -> str:
        return str(where).lower()

    def limit_clause(self, n: Token) -> tuple[str, int]:
        return ("limit", int(n))

    def offset_clause(self, n: Token) -> tuple[str, int]:
        return ("offset", int(n))


@functools.cache
def _parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr", maybe_placeholders=False)


def parse(text: str, today: dt.date | None = None) -> Query:
    """Parse a SOQL query; :class:`SoqlError` (MALFORMED_QUERY) when it is not valid."""
    today = today or dt.datetime.now(dt.UTC).date()
    try:
        tree = _parser().parse(text)
        return _ToModel(today).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, SoqlError):
            raise exc.orig_exc from None
        raise SoqlError("MALFORMED_QUERY", str(exc.orig_exc)) from None
    except LarkError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "syntax error"
        raise SoqlError("MALFORMED_QUERY", f"unexpected token in query: {first_line}") from None


class RecordSource(Protocol):
    """What the evaluator needs from the record store."""

    def scan(self, sobject: str) -> Iterable[dict[str, Any]]: ...

    def lookup(self, record_id: str) -> tuple[str, dict[str, Any]] | None: ...


@dataclass
class _Resolved:
    """A select/where path resolved against the schema: the reference hops and the final field."""

    path: tuple[str, ...]
    hops: tuple[Field, ...]
    field: Field | None  # None for the pseudo field Type of a polymorphic relationship


@dataclass
class QueryResult:
    """Rows ready for the REST or Bulk response, plus the total before LIMIT/OFFSET paging."""

    sobject: str
    records: list[dict[str, Any]] = field(default_factory=list)
    total_size: int = 0
    columns: tuple[str, ...] = ()


class Evaluator:
    """Runs a parsed :class:`Query` against a record source under a schema."""

    def __init__(self, schema: Schema, source: RecordSource, api_version: str = "66.0") -> None:
        self.schema = schema
        self.source = source
        self.api_version = api_version

    def run(self, query: Query) -> QueryResult:
        obj = self._object(query.sobject)
        selected = [self._resolve(obj, p) for p in query.fields]
        predicate = self._predicate(obj, query.where) if query.where is not None else None
        rows = [r for r in self.source.scan(obj.name) if predicate is None or predicate(r)]
        if query.order_by:
            rows = self._sort(obj, rows, query.order_by)
        start = query.offset or 0
        end = start + query.limit if query.limit is not None else None
        rows = rows[start:end]
        if query.count_only:
            return QueryResult(obj.name, [], len(rows))
        records = [self._shape(obj, row, selected) for row in rows]
        columns = tuple(".".join(r.path) for r in selected)
        return QueryResult(obj.name, records, len(records), columns)

    def validate(self, query: Query) -> None:
        """Resolve every field of the query (INVALID_TYPE / INVALID_FIELD) without running it."""
        obj = self._object(query.sobject)
        for path in query.fields:
            self._resolve(obj, path)
        for item in query.order_by:
            self._resolve(obj, item.path)
        if query.where is not None:
            self._predicate(obj, query.where)

    def ids_for(self, query: Query) -> set[str]:
        """The values of the single selected field (a semi-join subquery)."""
        obj = self._object(query.sobject)
        resolved = self._resolve(obj, query.fields[0])
        predicate = self._predicate(obj, query.where) if query.where is not None else None
        return {
            v
            for r in self.source.scan(obj.name)
            if (predicate is None or predicate(r)) and (v := self._value(r, resolved)) is not None
        }

    def _object(self, name: str) -> SObject:
        obj = self.schema.get(name)
        if obj is None:
            raise SoqlError(
                "INVALID_TYPE",
                f"sObject type '{name}' is not supported. If you are attempting to use a custom "
                "object, be sure to append the '__c' after the entity name.",
            )
        return obj

    def _resolve(self, obj: SObject, path: tuple[str, ...]) -> _Resolved:
        hops: list[Field] = []
        current: list[SObject] = [obj]
        for name in path[:-1]:
            ref = next((o.relationship(name) for o in current if o.relationship(name)), None)
            if ref is None:
                raise self._no_column(obj, path)
            hops.append(ref)
            current = [t for t in (self.schema.get(n) for n in ref.reference_to) if t]
        last = path[-1]
        if hops and last.lower() == "type" and len(hops[-1].reference_to) > 1:
            return _Resolved(path, tuple(hops), None)
        found = next((o.field(last) for o in current if o.field(last)), None)
        if found is None:
            raise self._no_column(obj, path)
        return _Resolved(path, tuple(hops), found)

    def _no_column(self, obj: SObject, path: tuple[str, ...]) -> SoqlError:
        return SoqlError(
            "INVALID_FIELD",
            f"No such column '{'.'.join(path)}' on entity '{obj.name}'. If you are attempting to "
            "use a custom field, be sure to append the '__c' after the custom field name.",
        )

    def _parent(self, record: dict[str, Any] | None, hop: Field) -> tuple[str, dict] | None:
        if record is None:
            return None
        parent_id = record.get(hop.name)
        return self.source.lookup(parent_id) if parent_id else None

    def _value(self, record: dict[str, Any], resolved: _Resolved) -> Any:
        current: dict[str, Any] | None = record
        parent_type = None
        for hop in resolved.hops:
            found = self._parent(current, hop)
            if found is None:
                return None
            parent_type, current = found
        if resolved.field is None:
            return parent_type
        if current is None:
            return None
        if resolved.hops:
            target = self.schema.get(parent_type or "")
            if target is None or target.field(resolved.field.name) is None:
                return None
        return current.get(resolved.field.name)

    def _shape(self, obj: SObject, row: dict[str, Any], selected: list[_Resolved]) -> dict:
        out: dict[str, Any] = {"attributes": self._attributes(obj.name, row["Id"])}
        for resolved in selected:
            if not resolved.hops:
                out[resolved.field.name] = row.get(resolved.field.name)  # type: ignore[union-attr]
                continue
            self._shape_relationship(out, row, resolved)
        return out

    def _shape_relationship(self, out: dict, row: dict, resolved: _Resolved) -> None:
        container, current = out, row
        for hop in resolved.hops:
            rel = hop.relationship_name or hop.name
            found = self._parent(current, hop)
            if found is None:
                container.setdefault(rel, None)
                return
            parent_type, current = found
            nested = container.get(rel)
            if not isinstance(nested, dict):
                nested = {"attributes": self._attributes(parent_type, current["Id"])}
                container[rel] = nested
            container = nested
        if resolved.field is None:
            container["Type"] = container["attributes"]["type"]
        else:
            container[resolved.field.name] = current.get(resolved.field.name)

    def _attributes(self, sobject: str, record_id: str) -> dict[str, str]:
        url = f"/services/data/v{self.api_version}/sobjects/{sobject}/{record_id}"
        return {"type": sobject, "url": url}

    def _sort(self, obj: SObject, rows: list[dict], order: tuple[OrderItem, ...]) -> list[dict]:
        for item in reversed(order):
            resolved = self._resolve(obj, item.path)
            kind = resolved.field.type if resolved.field else "string"
            present = [r for r in rows if self._value(r, resolved) is not None]
            missing = [r for r in rows if self._value(r, resolved) is None]
            present.sort(
                key=lambda r, res=resolved, k=kind: _sort_key(self._value(r, res), k),
                reverse=item.descending,
            )
            rows = present + missing if item.nulls_last else missing + present
        return rows

    def _predicate(self, obj: SObject, node: Any) -> Callable[[dict], bool]:
        if isinstance(node, BoolOp):
            parts = [self._predicate(obj, p) for p in node.parts]
            if node.op == "and":
                return lambda r: all(p(r) for p in parts)
            if node.op == "or":
                return lambda r: any(p(r) for p in parts)
            return lambda r: not parts[0](r)
        resolved = self._resolve(obj, node.path)
        kind = _match_kind(resolved.field)
        if isinstance(node, Compare):
            test = _comparison(kind, node.op, self._operand(resolved, node.value))
            return lambda r: test(self._value(r, resolved))
        if isinstance(node, InList):
            wanted = {self._operand(resolved, v) for v in node.values}
            wanted_keys = {_eq_key(w, kind) for w in wanted}
            return lambda r: (
                (_eq_key(self._value(r, resolved), kind) in wanted_keys) != node.negated
            )
        if isinstance(node, InQuery):
            ids = {_eq_key(i, kind) for i in self.ids_for(node.query)}
            return lambda r: (_eq_key(self._value(r, resolved), kind) in ids) != node.negated
        if isinstance(node, Like):
            regex = _like_regex(node.pattern)
            return lambda r: isinstance(v := self._value(r, resolved), str) and bool(regex.match(v))
        raise SoqlError("MALFORMED_QUERY", f"unsupported condition {node!r}")

    def _operand(self, resolved: _Resolved, literal: Literal) -> Any:
        """A literal converted to the stored form of the field it is compared with."""
        kind = resolved.field.type if resolved.field else "string"
        name = ".".join(resolved.path)
        if literal.kind == "null":
            return None
        if kind in ("id", "reference") and literal.kind == "string":
            normalized = normalize_id(literal.value)
            if normalized is None:
                raise SoqlError(
                    "INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {literal.value}"
                )
            return normalized
        expected = {
            "boolean": ("boolean",),
            "date": ("date", "date_range"),
            "datetime": ("datetime", "date_range"),
        }.get(kind, ("number",) if kind in NUMBER_TYPES else ("string",))
        if literal.kind not in expected:
            raise SoqlError(
                "INVALID_QUERY_FILTER_OPERATOR",
                f"value of filter criterion for field '{name}' must be of type {kind} and "
                "should not be enclosed in quotes"
                if literal.kind == "string"
                else f"value of filter criterion for field '{name}' must be of type {kind}",
            )
        return literal.value


def _match_kind(field: Field | None) -> str:
    """How a filter compares values of the field: its type, or ``case-sensitive`` text (a
    unique case-sensitive field, the only kind Salesforce compares case-sensitively)."""
    if field is None:
        return "string"
    return CASE_SENSITIVE if field.case_sensitive else field.type


def _eq_key(value: Any, kind: str) -> Any:
    if isinstance(value, str) and (kind in TEXT_TYPES or kind in ("id", "reference")):
        return value.lower()
    return value


def _sort_key(value: Any, kind: str) -> Any:
    return value.lower() if isinstance(value, str) and kind in TEXT_TYPES else value


def _range_bounds(value: DateRange, kind: str) -> tuple[str, str]:
    if kind == "datetime":
        start = dt.datetime.combine(value.start, dt.time(), dt.UTC)
        end = dt.datetime.combine(value.end, dt.time(), dt.UTC)
        return format_datetime(start), format_datetime(end)
    return value.start.isoformat(), value.end.isoformat()


def _comparison(kind: str, op: str, operand: Any) -> Callable[[Any], bool]:
    if isinstance(operand, DateRange):
        low, high = _range_bounds(operand, kind)
        tests: dict[str, Callable[[Any], bool]] = {
            "=": lambda v: low <= v < high,
            "!=": lambda v: not low <= v < high,
            "<": lambda v: v < low,
            "<=": lambda v: v < high,
            ">": lambda v: v >= high,
            ">=": lambda v: v >= low,
        }
        test = tests[op]
        return lambda v: v is not None and test(v)
    if operand is None:
        if op == "=":
            return lambda v: v is None
        if op == "!=":
            return lambda v: v is not None
        return lambda v: False
    key = _eq_key(operand, kind)
    ops: dict[str, Callable[[Any, Any], bool]] = {
        "=": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    compare = ops[op]
    if op == "!=":
        return lambda v: v is None or compare(_eq_key(v, kind), key)
    return lambda v: v is not None and compare(_eq_key(v, kind), key)


def _like_regex(pattern: str) -> re.Pattern[str]:
    parts: Iterator[str] = (
        ".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern
    )
    return re.compile("^" + "".join(parts) + "$", re.IGNORECASE | re.DOTALL)
