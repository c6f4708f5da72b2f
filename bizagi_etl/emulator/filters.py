"""``$filter``: parsed by ``odata-query``, evaluated over numpy columns.

Top-level comparisons run vectorised over a whole collection (a daily window over a million
cases costs a few milliseconds). The documented lambda over ``parameters`` runs row by row on
the parameter lists, as it must. What Bizagi does not document fails with a 400 that says why.

Semantics chosen where OData leaves room: ``eq``/``ne`` with ``null`` test presence; any other
comparison with a null property is false; ``ne`` on a null property is true. DateTimeOffset
literals must carry an offset (or ``Z``) and compare as instants. In the lambda, values of the
wrong type for a comparison simply do not match, since parameter values are heterogeneous.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from odata_query import ast
from odata_query.exceptions import ODataException
from odata_query.grammar import ODataLexer, ODataParser

from bizagi_etl.emulator.schema import Prop

Column = tuple[np.ndarray, np.ndarray]  # (values, null mask)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
Mask = np.ndarray


class FilterError(ValueError):
    """The $filter cannot be evaluated; the message is safe to return to the client."""


_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
    ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
}  # fmt: skip
_FLIPPED = {ast.Lt: ast.Gt, ast.LtE: ast.GtE, ast.Gt: ast.Lt, ast.GtE: ast.LtE}
_STRING_FUNCS: dict[str, Callable[[str, str], bool]] = {
    "contains": lambda s, x: x in s,
    "startswith": str.startswith,
    "endswith": str.endswith,
}


def _kind(edm: str) -> str:
    if edm.startswith("Collection("):
        return "collection"
    return {
        "Edm.String": "string",
        "Edm.Guid": "guid",
        "Edm.Boolean": "bool",
        "Edm.DateTimeOffset": "datetime",
        "Edm.Date": "date",
        "Edm.Int64": "number",
        "Edm.Int32": "number",
        "Edm.Int16": "number",
        "Edm.Byte": "number",
        "Edm.SByte": "number",
        "Edm.Double": "number",
        "Edm.Single": "number",
        "Edm.Decimal": "number",
    }.get(edm, "untyped")


def parse(text: str) -> ast._Node:
    try:
        return ODataParser().parse(ODataLexer().tokenize(text))
    except ODataException as exc:
        raise FilterError(f"$filter is not a valid OData expression: {exc}") from None


@dataclass
class Source:
    """The rows a filter runs over, in served order."""

    type_name: str
    props: tuple[Prop, ...]
    size: int
    records: Callable[[], list[dict[str, Any]]]  # every row, materialised (slow path)
    fast_column: Callable[[str], Column | None] = lambda name: None
    _records: list[dict[str, Any]] | None = field(default=None, repr=False)

    def all_records(self) -> list[dict[str, Any]]:
        if self._records is None:
            self._records = self.records()
        return self._records

    def kind_of(self, name: str) -> str:
        for prop in self.props:
            if prop.name == name:
                return _kind(prop.edm)
        raise FilterError(f"$filter: type {self.type_name!r} has no property {name!r}")

    def column(self, name: str) -> Column:
        fast = self.fast_column(name)
        if fast is not None:
            return fast
        raw = [r.get(name) for r in self.all_records()]
        return _to_column(self.kind_of(name), raw)


def _to_column(kind: str, raw: list[Any]) -> Column:
    nulls = np.array([v is None for v in raw], dtype=bool)
    if kind == "datetime":
        values = np.array([0 if v is None else _instant(v) for v in raw], dtype=np.int64)
    elif kind == "date":
        values = np.array([0 if v is None else _day(v) for v in raw], dtype=np.int64)
    elif kind == "number":
        values = np.array([0 if v is None else v for v in raw], dtype=np.float64)
    elif kind == "bool":
        values = np.array([bool(v) for v in raw], dtype=bool)
    else:
        values = np.array(["" if v is None else str(v) for v in raw], dtype=object)
    return values, nulls


def _instant(text: str) -> int:
    """An ISO 8601 date-time as UTC microseconds; naive ones are read as UTC."""
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return (parsed - _EPOCH) // dt.timedelta(microseconds=1)  # exact, also before 1970


def _day(text: str) -> int:
    """An ISO 8601 date as days since 1970-01-01."""
    return (dt.date.fromisoformat(text) - _EPOCH.date()).days


def evaluate(node: ast._Node, source: Source) -> Mask:
    """A boolean mask over ``source``'s rows."""
    if isinstance(node, ast.BoolOp):
        left, right = evaluate(node.left, source), evaluate(node.right, source)
        return left & right if isinstance(node.op, ast.And) else left | right
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return ~evaluate(node.operand, source)
    if isinstance(node, ast.Compare):
        return _compare(node, source)
    if isinstance(node, ast.Call):
        name, column, needle = _string_call(node, source)
        values, nulls = column
        test = _STRING_FUNCS[name]
        return np.array(
            [not null and test(v, needle) for v, null in zip(values, nulls, strict=True)],
            dtype=bool,
        )
    if isinstance(node, ast.CollectionLambda):
        return _lambda(node, source)
    raise FilterError(f"$filter: {type(node).__name__} expressions are not supported")


def _compare(node: ast.Compare, source: Source) -> Mask:
    op_type, left, right = type(node.comparator), node.left, node.right
    if op_type not in _OPS:
        raise FilterError(f"$filter: operator {op_type.__name__!r} is not supported")
    if isinstance(right, ast.Identifier) and not isinstance(left, ast.Identifier):
        left, right, op_type = right, left, _FLIPPED.get(op_type, op_type)
    if not isinstance(left, ast.Identifier) or left.namespace:
        raise FilterError("$filter: a comparison needs a top-level property on one side")
    if not isinstance(right, ast._Literal):
        raise FilterError(f"$filter: {left.name!r} must be compared with a literal")
    kind = source.kind_of(left.name)
    lit_kind, lit = literal(right)
    values, nulls = source.column(left.name)
    if lit_kind == "null":
        if op_type not in (ast.Eq, ast.NotEq):
            raise FilterError(f"$filter: null can only be compared with eq or ne ({left.name!r})")
        return nulls.copy() if op_type is ast.Eq else ~nulls
    _check_types(left.name, kind, lit_kind, op_type)
    if kind == "guid":
        values, lit = np.array([v.lower() for v in values], dtype=object), str(lit).lower()
    result = np.asarray(_OPS[op_type](values, lit), dtype=bool)
    return result | nulls if op_type is ast.NotEq else result & ~nulls


def _check_types(name: str, kind: str, lit_kind: str, op_type: type) -> None:
    compatible = {
        "string": {"string", "guid"},
        "guid": {"guid", "string"},
        "number": {"number"},
        "bool": {"bool"},
        "datetime": {"datetime"},
        "date": {"date"},
    }.get(kind, set())
    if lit_kind not in compatible:
        hint = " (use a DateTimeOffset such as 2024-05-01T00:00:00Z)" if kind == "datetime" else ""
        raise FilterError(
            f"$filter: property {name!r} is {kind}, cannot compare with {lit_kind}{hint}"
        )
    if kind == "bool" and op_type not in (ast.Eq, ast.NotEq):
        raise FilterError(f"$filter: boolean property {name!r} only supports eq and ne")


def literal(node: ast._Node) -> tuple[str, Any]:
    """(kind, value) of a literal; date-times become UTC microseconds."""
    if isinstance(node, ast.Null):
        return "null", None
    if isinstance(node, ast.String):
        return "string", node.val
    if isinstance(node, ast.Integer):
        return "number", int(node.val)
    if isinstance(node, ast.Float):
        return "number", float(node.val)
    if isinstance(node, ast.Boolean):
        return "bool", node.val.lower() == "true"
    if isinstance(node, ast.GUID):
        return "guid", node.val.lower()
    if isinstance(node, ast.DateTime):
        parsed = dt.datetime.fromisoformat(node.val)
        if parsed.tzinfo is None:
            raise FilterError(f"$filter: DateTimeOffset {node.val!r} needs an offset or Z")
        return "datetime", _instant(node.val)
    if isinstance(node, ast.Date):
        try:
            return "date", _day(node.val)
        except ValueError:
            raise FilterError(f"$filter: {node.val!r} is not a valid Edm.Date") from None
    raise FilterError(f"$filter: literal {type(node).__name__} is not supported")


def _string_call(node: ast.Call, source: Source) -> tuple[str, Column, str]:
    name = node.func.name
    if name not in _STRING_FUNCS:
        raise FilterError(f"$filter: function {name!r} is not supported")
    prop, needle = [*node.args, None, None][:2]
    if len(node.args) != 2 or not isinstance(prop, ast.Identifier):
        raise FilterError(f"$filter: {name}() takes a property and a string")
    if not isinstance(needle, ast.String):
        raise FilterError(f"$filter: {name}() takes a string literal as its second argument")
    if source.kind_of(prop.name) not in ("string", "guid"):
        raise FilterError(f"$filter: {name}() needs a string property, {prop.name!r} is not")
    return name, source.column(prop.name), needle.val


# -- the parameters/any(...) lambda, row by row --------------------------------------------------


def _lambda(node: ast.CollectionLambda, source: Source) -> Mask:
    owner = node.owner
    if not isinstance(owner, ast.Identifier) or source.kind_of(owner.name) != "collection":
        raise FilterError("$filter: any()/all() needs a collection property such as parameters")
    if node.lambda_ is None:  # parameters/any() without a body: "has any element"
        return np.array([bool(r.get(owner.name)) for r in source.all_records()], dtype=bool)
    var = node.lambda_.identifier.name
    body = node.lambda_.expression
    quantifier = any if isinstance(node.operator, ast.Any) else all
    rows = source.all_records()
    return np.array(
        [quantifier(_row_eval(body, var, item) for item in r.get(owner.name) or []) for r in rows],
        dtype=bool,
    )


def _row_eval(node: ast._Node, var: str, item: dict[str, Any]) -> bool:
    if isinstance(node, ast.BoolOp):
        left = _row_eval(node.left, var, item)
        if isinstance(node.op, ast.And):
            return left and _row_eval(node.right, var, item)
        return left or _row_eval(node.right, var, item)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not _row_eval(node.operand, var, item)
    if isinstance(node, ast.Compare):
        return _row_compare(node, var, item)
    if isinstance(node, ast.Call):
        name = node.func.name
        if name not in _STRING_FUNCS or len(node.args) != 2:
            raise FilterError(f"$filter: function {name!r} is not supported in a lambda")
        value = _member(node.args[0], var, item)
        needle = node.args[1]
        if not isinstance(needle, ast.String):
            raise FilterError(f"$filter: {name}() takes a string literal as its second argument")
        return isinstance(value, str) and _STRING_FUNCS[name](value, needle.val)
    raise FilterError(f"$filter: {type(node).__name__} is not supported inside a lambda")


def _member(node: ast._Node, var: str, item: dict[str, Any]) -> Any:
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.owner, ast.Identifier)
        and node.owner.name == var
    ):
        return item.get(node.attr)
    raise FilterError(f"$filter: inside the lambda, refer to members as {var}/name")


def _row_compare(node: ast.Compare, var: str, item: dict[str, Any]) -> bool:
    op_type = type(node.comparator)
    if op_type not in _OPS:
        raise FilterError(f"$filter: operator {op_type.__name__!r} is not supported")
    left, right = node.left, node.right
    if isinstance(left, ast._Literal):
        left, right, op_type = right, left, _FLIPPED.get(op_type, op_type)
    value = _member(left, var, item)
    lit_kind, lit = literal(right)
    if lit_kind == "null":
        return (value is None) == (op_type is ast.Eq)
    if value is None:
        return op_type is ast.NotEq
    if lit_kind == "datetime" and isinstance(value, str):
        try:
            value = _instant(value)
        except ValueError:
            return False
    elif not _same_kind(lit_kind, value):
        return False
    return bool(_OPS[op_type](value, lit))


def _same_kind(lit_kind: str, value: Any) -> bool:
    if lit_kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if lit_kind in ("string", "guid"):
        return isinstance(value, str)
    if lit_kind == "bool":
        return isinstance(value, bool)
    return False  # a date-time literal only matches text that parses as one
