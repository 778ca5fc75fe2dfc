"""The filter compiler: a parsed SCIM filter becomes one SQLAlchemy expression.

Nothing is evaluated in Python over fetched rows: every comparison, value path
and logical operator becomes SQL that runs inside the database, under the
tenant condition the caller ANDs around it (SQLAlchemy parenthesises an ``or``
inside an ``and``, so no filter can reach another tenant).

Where an attribute lives (a column, a JSON document, a child table) is the
storage layer's business; it answers through the small ``Resolver`` protocol
below. What an attribute *is* (type, caseExact, multiValued, filterable) comes
from the schema registry. An attribute that is unknown, never returned, or that
storage cannot query is a 400 ``invalidFilter``: a filter term is never dropped.

Every leaf compiles to an expression that is TRUE or FALSE, never NULL, so that
``not (title eq "x")`` also matches users without a title.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from scim2_filter_parser import ast
from sqlalchemy import and_, bindparam, func, not_, or_, true
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import DateTime, TypeDecorator

from .errors import invalid_filter
from .filter_parser import QuotedString, parse_filter
from .marshal import format_datetime
from .schemas import Attribute, ResourceType

SQL = ColumnElement[Any]

_ORDERING = {"gt", "ge", "lt", "le"}
_SUBSTRING = {"co", "sw", "ew"}
#: The longest value a filter compares with, in characters, on every database. SQLite refuses
#: a LIKE pattern over 50,000 bytes (SQLITE_MAX_LIKE_PATTERN_LENGTH): 10,000 characters of up
#: to four UTF-8 bytes each, with co's two wildcards, stay below it.
MAX_VALUE_LENGTH = 10_000


class Element(Protocol):
    """One value of a multi-valued attribute, inside an EXISTS."""

    def sub(self, sub: Attribute) -> SQL | None: ...
    def whole(self) -> SQL: ...


class Resolver(Protocol):
    """Storage's answer to "where does this attribute live?"."""

    def scalar(self, attr: Attribute, sub: Attribute | None) -> SQL | None:
        """A singular attribute (or a sub-attribute of a singular complex one)."""

    def present(self, attr: Attribute) -> SQL | None:
        """``attr pr`` for a singular complex attribute."""

    def exists(self, attr: Attribute, condition: Callable[[Element], SQL]) -> SQL | None:
        """EXISTS over the values of a multi-valued attribute, each tested by ``condition``."""


@dataclass(frozen=True)
class FilterTemplate:
    """A filter shape compiled once: SQL with a bind parameter where each quoted value goes.

    ``binders`` says, per parameter, which value of the filter (by position, see
    ``filter_parser.lift_values``) it takes and how that value becomes the parameter
    (typed, case-folded, made a LIKE pattern), so ``bind`` checks values exactly as a
    one-off compilation would, and raises the same 400 invalidFilter.
    """

    condition: SQL
    binders: tuple[tuple[str, int, Callable[[Any], Any]], ...]

    def bind(self, values: Sequence[str]) -> dict[str, Any]:
        return {name: convert(values[index]) for name, index, convert in self.binders}


def compile_template(rt: ResourceType, shape: str, resolver: Resolver) -> FilterTemplate:
    """Compile the shape of a filter, whose quoted values are the placeholders ``"#0"``, ``"#1"`` ..."""
    compiler = FilterCompiler(rt, resolver, template=True)
    condition = compiler.compile(parse_filter(shape))
    return FilterTemplate(condition, tuple(compiler.binders))


class FilterCompiler:
    def __init__(self, rt: ResourceType, resolver: Resolver, template: bool = False):
        self.rt = rt
        self.resolver = resolver
        #: when compiling a template: (parameter name, value position, conversion) per quoted value
        self.binders: list[tuple[str, int, Callable[[Any], Any]]] | None = [] if template else None

    # ------------------------------------------------------------- structure
    def compile(self, node, element: tuple[Attribute, Element] | None = None) -> SQL:
        if isinstance(node, ast.Filter):
            if node.namespace is not None:  # value path: attr[filter]
                inner = self._value_path(node, None, element)
                return not_(inner) if node.negated else inner
            inner = self.compile(node.expr, element)
            return not_(inner) if node.negated else inner
        if isinstance(node, ast.LogExpr):
            left = self.compile(node.expr1, element)
            right = self.compile(node.expr2, element)
            return and_(left, right) if node.op.lower() == "and" else or_(left, right)
        if isinstance(node, ast.AttrExpr):
            return self._attr_expr(node, element)
        raise invalid_filter(f"Unsupported filter element {node!r}")

    def _value_path(self, node: ast.Filter, then: Callable[[Element], SQL] | None,
                    element: tuple[Attribute, Element] | None) -> SQL:
        if element is not None:
            raise invalid_filter("Value paths cannot be nested")
        attr, sub = self._resolve(node.namespace)
        if not attr.multi_valued or not attr.is_complex:
            raise invalid_filter(f"'{attr.name}' is not a multi-valued complex attribute")

        def condition(el: Element) -> SQL:
            cond = self.compile(node.expr, (attr, el))
            return and_(cond, then(el)) if then is not None else cond

        result = self.resolver.exists(attr, condition)
        if result is None:
            raise invalid_filter(f"Attribute '{attr.name}' cannot be filtered")
        return result

    # --------------------------------------------------------------- leaves
    def _attr_expr(self, node: ast.AttrExpr, element: tuple[Attribute, Element] | None) -> SQL:
        op = node.value.lower()
        value = node.comp_value.value if node.comp_value is not None else None
        path = node.attr_path
        if isinstance(path.attr_name, ast.Filter):  # emails[type eq "work"].value eq "x"
            vp = path.attr_name
            attr, sub = self._resolve(vp.namespace)
            if sub is None:
                raise invalid_filter("A value path compared with an operator needs a sub-attribute")
            return self._value_path(vp, lambda el: self._compare_element(el, sub, op, value), None)

        if element is not None:  # inside brackets: names are sub-attributes of the parent
            parent, el = element
            name = self._plain_name(path)
            sub = parent.sub(name)
            if sub is None:
                raise invalid_filter(f"'{parent.name}' has no sub-attribute '{name}'")
            return self._compare_element(el, sub, op, value)

        attr, sub = self._resolve(path)
        if attr.multi_valued:
            if sub is None and attr.is_complex:
                if op == "pr":
                    result = self.resolver.exists(attr, lambda el: true())
                    return self._require(result, attr)
                sub = attr.sub("value")
                if sub is None:
                    raise invalid_filter(f"Filter on '{attr.name}' needs a sub-attribute")
            result = self.resolver.exists(attr, lambda el: self._compare_element(el, sub, op, value))
            return self._require(result, attr)
        if attr.is_complex and sub is None:
            if op != "pr":
                raise invalid_filter(f"'{attr.name}' is complex: filter on one of its sub-attributes")
            return self._require(self.resolver.present(attr), attr)
        target = sub or attr
        expr = self.resolver.scalar(attr, sub)
        return self._compare(self._require(expr, target), target, op, value)

    def _compare_element(self, el: Element, sub: Attribute | None, op: str, value: Any) -> SQL:
        if sub is None:
            raise invalid_filter("Missing sub-attribute")
        self._check_filterable(sub)
        expr = el.sub(sub)
        return self._compare(self._require(expr, sub), sub, op, value)

    # ------------------------------------------------------------ resolution
    def _plain_name(self, path: ast.AttrPath) -> str:
        if path.uri or path.sub_attr is not None:
            raise invalid_filter("Inside brackets use the plain sub-attribute name")
        return path.attr_name

    def _resolve(self, path: ast.AttrPath) -> tuple[Attribute, Attribute | None]:
        name = f"{path.uri}:{path.attr_name}" if path.uri else path.attr_name
        if path.sub_attr is not None:
            name = f"{name}.{path.sub_attr.value}"
        resolved = self.rt.resolve(name)
        if resolved is None:
            raise invalid_filter(f"Unknown attribute '{name}' for {self.rt.name}")
        attr, sub = resolved
        self._check_filterable(attr)
        if sub is not None:
            self._check_filterable(sub)
        return attr, sub

    @staticmethod
    def _check_filterable(attr: Attribute) -> None:
        if not attr.filterable:
            raise invalid_filter(f"Attribute '{attr.path}' cannot be filtered")

    @staticmethod
    def _require(expr: SQL | None, attr: Attribute) -> SQL:
        if expr is None:
            raise invalid_filter(f"Attribute '{attr.path}' cannot be filtered")
        return expr

    # ------------------------------------------------------------ comparison
    def _compare(self, expr: SQL, attr: Attribute, op: str, raw: Any) -> SQL:
        if op == "pr":
            if attr.type in ("string", "reference", "binary"):
                return and_(expr.isnot(None), expr != "")
            return expr.isnot(None)
        if raw is None:
            raise invalid_filter(f"Operator '{op}' needs a value")
        if not isinstance(raw, QuotedString) and raw == "null":
            if op == "eq":
                return expr.is_(None)
            if op == "ne":
                return expr.isnot(None)
            raise invalid_filter(f"Operator '{op}' cannot compare with null")
        _check_operator(attr, op)
        fold = attr.type in ("string", "reference") and not attr.case_exact
        value = self._value(raw, partial(self._parameter, expr, attr, op))
        # both sides folded by the database's own lower(): Python's differs from PostgreSQL's
        # for a few letters (a final sigma, a dotted capital I), and the unique index uses the
        # database's
        left, value = (func.lower(expr), func.lower(value)) if fold else (expr, value)
        present = expr.isnot(None)
        if op == "eq":
            return and_(present, left == value)
        if op == "ne":
            return or_(expr.is_(None), left != value)
        if op in _SUBSTRING:
            return and_(present, left.like(value, escape="\\"))
        if op in _ORDERING:
            comparison = {"gt": left > value, "ge": left >= value, "lt": left < value, "le": left <= value}[op]
            return and_(present, comparison)
        raise invalid_filter(f"The operator '{op}' is not supported")

    def _value(self, raw: Any, convert: Callable[[Any], Any]) -> Any:
        """The compared value: converted now, or (in a template, for a quoted value) a bind
        parameter converted when the template is bound."""
        if self.binders is None or not isinstance(raw, QuotedString):
            return convert(raw)
        name = f"filter_value_{len(self.binders)}"
        self.binders.append((name, int(raw[1:]), convert))
        return bindparam(name)

    def _parameter(self, expr: SQL, attr: Attribute, op: str, raw: Any) -> Any:
        """What the database compares with: the typed value, as a LIKE pattern."""
        value = self._typed_value(expr, attr, op, raw)
        if op in _SUBSTRING:
            pattern = escape_like(value)
            value = {"co": f"%{pattern}%", "sw": f"{pattern}%", "ew": f"%{pattern}"}[op]
        return value

    def _typed_value(self, expr: SQL, attr: Attribute, op: str, raw: Any) -> Any:
        if len(raw) > MAX_VALUE_LENGTH:
            raise invalid_filter(f"A filter value may be at most {MAX_VALUE_LENGTH} characters long, "
                                 f"not {len(raw)} (compared with '{attr.path}')")
        kind = attr.type
        if kind == "boolean":
            if isinstance(raw, QuotedString) or raw not in ("true", "false"):
                raise invalid_filter(f"'{attr.path}' is boolean: compare with true or false")
            return raw == "true"
        if kind in ("integer", "decimal"):
            try:
                return int(raw) if kind == "integer" else float(raw)
            except ValueError as exc:
                raise invalid_filter(f"'{attr.path}' is numeric: {raw!r} is not a number") from exc
        if kind == "dateTime":
            try:
                moment = dt.datetime.fromisoformat(str(raw))
                # in UTC, as stored: a moment whose UTC falls outside years 1-9999 is no dateTime
                moment = moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
            except (ValueError, OverflowError) as exc:
                raise invalid_filter(f"'{attr.path}' is a dateTime: {raw!r} is not one") from exc
            if _is_datetime_column(expr):
                return moment
            return format_datetime(moment)
        if not isinstance(raw, QuotedString):
            raise invalid_filter(f"'{attr.path}' is a string: quote the value")
        return str(raw)


def _check_operator(attr: Attribute, op: str) -> None:
    """Operators that an attribute's type rules out, whatever the value."""
    kind = attr.type
    if kind == "boolean" and op not in ("eq", "ne"):
        raise invalid_filter(f"Operator '{op}' is not valid for boolean '{attr.path}'")
    if kind in ("integer", "decimal") and op in _SUBSTRING:
        raise invalid_filter(f"Operator '{op}' is not valid for numeric '{attr.path}'")
    if kind == "dateTime" and op in _SUBSTRING:
        raise invalid_filter(f"Operator '{op}' is not valid for dateTime '{attr.path}'")
    if kind == "binary":
        raise invalid_filter(f"Binary attribute '{attr.path}' cannot be filtered")


def _is_datetime_column(expr: SQL) -> bool:
    """A real timestamp column (meta.created) compares with datetimes; JSON text with canonical strings."""
    column_type = expr.type
    if isinstance(column_type, TypeDecorator):
        column_type = column_type.impl_instance
    return isinstance(column_type, DateTime)


def escape_like(value: str) -> str:
    """Make ``%``, ``_`` and the escape character itself match literally in LIKE."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


