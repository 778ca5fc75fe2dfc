"""Matching a bracketed value filter (``emails[type eq "work"]``) against one value.

PATCH has to find, inside one resource, which values of a multi-valued
attribute a path selects. That is the only place filters are evaluated in
Python; queries over many resources are compiled to SQL by ``filters``.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from scim2_filter_parser import ast

from .errors import invalid_path
from .filter_parser import QuotedString
from .schemas import Attribute


def matches(parent: Attribute, node, value: dict[str, Any]) -> bool:
    if isinstance(node, ast.Filter):
        if node.namespace is not None:
            raise invalid_path("Value paths cannot be nested")
        result = matches(parent, node.expr, value)
        return not result if node.negated else result
    if isinstance(node, ast.LogExpr):
        if node.op.lower() == "and":
            return matches(parent, node.expr1, value) and matches(parent, node.expr2, value)
        return matches(parent, node.expr1, value) or matches(parent, node.expr2, value)
    if isinstance(node, ast.AttrExpr):
        return _leaf(parent, node, value)
    raise invalid_path(f"Unsupported filter element {node!r}")


def _leaf(parent: Attribute, node: ast.AttrExpr, value: dict[str, Any]) -> bool:
    path = node.attr_path
    if isinstance(path.attr_name, ast.Filter) or path.uri:
        raise invalid_path("Inside brackets use the plain sub-attribute name")
    sub = parent.sub(path.attr_name)
    if sub is None:
        raise invalid_path(f"'{parent.name}' has no sub-attribute '{path.attr_name}'")
    actual = _lookup(value, sub.name)
    op = node.value.lower()
    if op == "pr":
        return actual not in (None, "", [], {})
    raw = node.comp_value.value
    expected = _coerce(sub, raw)
    if actual is None:
        return op == "ne"
    if sub.type in ("string", "reference") and not sub.case_exact:
        actual = str(actual).lower()
        expected = expected.lower() if isinstance(expected, str) else expected
    if sub.type == "dateTime" and isinstance(actual, str):
        actual = _moment(actual)
    try:
        if op == "eq":
            return actual == expected
        if op == "ne":
            return actual != expected
        if op == "co":
            return str(expected) in str(actual)
        if op == "sw":
            return str(actual).startswith(str(expected))
        if op == "ew":
            return str(actual).endswith(str(expected))
        if op == "gt":
            return actual > expected
        if op == "ge":
            return actual >= expected
        if op == "lt":
            return actual < expected
        if op == "le":
            return actual <= expected
    except TypeError:
        return False
    raise invalid_path(f"The operator '{op}' is not supported")


def _lookup(value: dict[str, Any], name: str) -> Any:
    for key, item in value.items():
        if key.lower() == name.lower():
            return item
    return None


def _coerce(sub: Attribute, raw: str) -> Any:
    if not isinstance(raw, QuotedString):
        if raw == "true":
            return True
        if raw == "false":
            return False
        if raw == "null":
            return None
        try:
            return int(raw) if raw.lstrip("-").isdigit() else float(raw)
        except ValueError:
            return raw
    if sub.type == "dateTime":
        return _moment(raw)
    return str(raw)


def _moment(text: str) -> dt.datetime | str:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return text
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
