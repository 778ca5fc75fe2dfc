"""Parsing SCIM filters and attribute paths with scim2-filter-parser's lexer and parser.

The library is used for what it does well (tokenising, the LALR grammar of
RFC 7644 §3.4.2.2) with three corrections made here, each covered by tests:

* Its lexer reads only one-digit numbers and strings without escapes; ours reads
  JSON numbers and JSON strings (``"a\\"b"``), and marks quoted strings so that
  ``"true"`` and ``true`` stay different values.
* Its grammar gives ``and`` and ``or`` the same precedence, so ``a or b and c``
  would mean ``(a or b) and c``. RFC 7644 says ``and`` binds tighter; the chain is
  re-associated after parsing. Parenthesised groups are kept as written.
* Its errors are plain exceptions; here they become 400 ``invalidFilter``.

A filter is also held to a size (``MAX_COMPARISONS``, ``MAX_NESTING``): its tree is
compiled recursively, here and by SQLAlchemy, and SQLite's own parser has a fixed stack, so
an unbounded filter would fail the query instead of being refused. IdPs send one or two
comparisons; a client batching lookups by id stays far below the limits.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from scim2_filter_parser import ast
from scim2_filter_parser.lexer import SCIMLexer
from scim2_filter_parser.parser import SCIMParser

from .. import jsontext
from .errors import ScimError, invalid_filter, invalid_path

#: comparisons (``eq``, ``pr``, ...) in one filter or path
MAX_COMPARISONS = 200
#: parentheses and brackets inside each other
MAX_NESTING = 20
_COMPARISONS = frozenset({"EQ", "NE", "CO", "SW", "EW", "GT", "GE", "LT", "LE", "PR"})
_OPENING, _CLOSING = frozenset({"LPAREN", "LBRACKET"}), frozenset({"RPAREN", "RBRACKET"})


class QuotedString(str):
    """A compValue that was written as a JSON string."""


class ScimFilterLexer(SCIMLexer):
    tokens = SCIMLexer.tokens
    NUMBER = r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?"

    @_(r'"(?:[^"\\]|\\.)*"')  # noqa: F821 (sly's rule decorator)
    def COMP_VALUE(self, t):  # noqa: N802 (sly's token naming)
        t.value = string_value(t.value)
        return t


def string_value(quoted: str) -> QuotedString:
    """A quoted compValue as its string: JSON's escapes, but neither an unpaired UTF-16
    surrogate nor U+0000, which no stored string can hold (PostgreSQL refuses both, SQLite
    cannot encode the first), so a filter with one is invalid rather than a failed query.
    Raises ValueError."""
    value = jsontext.loads(quoted)
    if "\x00" in value:
        raise ValueError("a string may not contain U+0000")
    return QuotedString(value)


_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')


def lift_values(text: str) -> tuple[str, tuple[str, ...]]:
    """Split a filter into its shape and its quoted values.

    ``userName eq "bjensen"`` becomes ``userName eq "#0"`` and ``("bjensen",)``. An IdP asks
    the same few shapes with ever new values, so a filter is compiled once per shape and its
    values are bound when the statement runs (see ``filters.FilterTemplate``). In the
    grammar a double quote only ever opens a compValue, so every quoted string is a value.
    """
    values: list[str] = []

    def slot(match: re.Match) -> str:
        try:
            values.append(string_value(match.group(0)))
        except ValueError as exc:
            raise invalid_filter(f"Malformed string {match.group(0)} in the filter") from exc
        return f'"#{len(values) - 1}"'

    return _QUOTED.sub(slot, text), tuple(values)


@lru_cache(maxsize=4096)
def parse_filter(text: str) -> ast.Filter:
    """Parse a filter expression, or raise 400 invalidFilter.

    Cached: the same filters and paths recur in every provisioning cycle, and the trees are
    never modified after parsing.
    """
    return _parse(text, invalid_filter)


def _parse(text: str, error, shown: str | None = None) -> ast.Filter:
    shown = text if shown is None else shown
    if not text or not text.strip():
        raise error("Empty filter")
    try:
        tokens = list(ScimFilterLexer().tokenize(text))
        _check_size(tokens, error)
        tree = SCIMParser().parse(iter(tokens))
    except ScimError:
        raise
    except Exception as exc:  # the library raises ValueError, SCIMParserError, sly errors
        raise error(f"Cannot parse {shown!r}: {exc}") from exc
    if tree is None:
        raise error(f"Cannot parse {shown!r}")
    return _reassociate(tree)


def _check_size(tokens: list, error) -> None:
    comparisons = depth = deepest = 0
    for token in tokens:
        if token.type in _COMPARISONS:
            comparisons += 1
        elif token.type in _OPENING:
            depth += 1
            deepest = max(deepest, depth)
        elif token.type in _CLOSING:
            depth -= 1
    if comparisons > MAX_COMPARISONS:
        raise error(f"A filter may have at most {MAX_COMPARISONS} comparisons, not {comparisons}")
    if deepest > MAX_NESTING:
        raise error(f"A filter may nest parentheses and brackets at most {MAX_NESTING} deep")


def _is_bare_chain(node: ast.Filter) -> bool:
    return isinstance(node, ast.Filter) and isinstance(node.expr, ast.LogExpr) \
        and not node.negated and node.namespace is None


def _flatten(node: ast.Filter, operands: list, ops: list[str]) -> None:
    if _is_bare_chain(node):
        _flatten(node.expr.expr1, operands, ops)
        ops.append(node.expr.op.lower())
        _flatten(node.expr.expr2, operands, ops)
    else:
        operands.append(node)


def _reassociate(node):
    """Rebuild every unparenthesised and/or chain with ``and`` binding tighter than ``or``."""
    if not isinstance(node, ast.Filter):
        return node
    if _is_bare_chain(node):
        operands: list = []
        ops: list[str] = []
        _flatten(node, operands, ops)
        operands = [_reassociate(o) for o in operands]
        groups = [[operands[0]]]
        for op, operand in zip(ops, operands[1:]):
            if op == "or":
                groups.append([operand])
            else:
                groups[-1].append(operand)
        ands = [_fold("and", g) for g in groups]
        return _fold("or", ands)
    if isinstance(node.expr, ast.Filter):
        node.expr = _reassociate(node.expr)
    elif isinstance(node.expr, ast.AttrExpr) and isinstance(node.expr.attr_path.attr_name, ast.Filter):
        node.expr.attr_path.attr_name = _reassociate(node.expr.attr_path.attr_name)
    return node


def _fold(op: str, items: list):
    result = items[0]
    for item in items[1:]:
        result = ast.Filter(ast.LogExpr(op, result, item), False, None)
    return result


# ------------------------------------------------------------------- PATCH paths


@dataclass(frozen=True)
class Path:
    """A PATCH path: ``attr``, ``attr.sub``, ``attr[filter]`` or ``attr[filter].sub``, maybe URN-qualified.

    ``attribute`` is the text of the attribute (with its URN, if any), ``value_filter``
    the bracketed filter (an AST whose names are sub-attributes of ``attribute``),
    and ``sub_attribute`` the name after the dot.
    """

    attribute: str
    sub_attribute: str | None = None
    value_filter: ast.Filter | None = None


@lru_cache(maxsize=4096)
def parse_path(text: str) -> Path:
    """Parse a PATCH path with the filter grammar (a path is the left side of ``pr``)."""
    text = text.strip()
    if not text:
        raise invalid_path("Empty path")
    tree = _parse(f"{text} pr", invalid_path, shown=text)
    expr = tree.expr if isinstance(tree, ast.Filter) else None
    if not isinstance(expr, ast.AttrExpr) or expr.value.lower() != "pr":
        raise invalid_path(f"Not a valid attribute path: {text!r}")
    attr_path = expr.attr_path
    if isinstance(attr_path.attr_name, ast.Filter):
        value_path = attr_path.attr_name
        namespace = value_path.namespace
        return Path(
            attribute=_attr_text(namespace),
            sub_attribute=namespace.sub_attr.value if namespace.sub_attr else None,
            value_filter=value_path.expr,
        )
    return Path(
        attribute=_attr_text(attr_path),
        sub_attribute=attr_path.sub_attr.value if attr_path.sub_attr else None,
    )


def _attr_text(attr_path: ast.AttrPath) -> str:
    if not isinstance(attr_path.attr_name, str):  # a second [filter] on a value path
        raise invalid_path("A path may filter an attribute's values once: attr[filter].sub")
    return f"{attr_path.uri}:{attr_path.attr_name}" if attr_path.uri else attr_path.attr_name
