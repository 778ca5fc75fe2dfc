"""The corrections made to scim2-filter-parser (see scim_server/scim/filter_parser.py)."""
import pytest
from scim2_filter_parser import ast

from scim_server.scim.errors import ScimError
from scim_server.scim.filter_parser import QuotedString, parse_filter, parse_path


def _shape(node) -> str:
    """A compact rendering of the parsed tree: (a and b), (a or b), not(...), name op value."""
    if isinstance(node, ast.Filter):
        inner = _shape(node.expr)
        if node.namespace is not None:
            inner = f"{node.namespace.attr_name}[{inner}]"
        return f"not({inner})" if node.negated else inner
    if isinstance(node, ast.LogExpr):
        return f"({_shape(node.expr1)} {node.op.lower()} {_shape(node.expr2)})"
    if isinstance(node, ast.AttrExpr):
        return f"{node.attr_path.attr_name} {node.value.lower()}"
    raise AssertionError(node)


@pytest.mark.parametrize("text, shape", [
    ("a eq 1 or b eq 2 and c eq 3", "(a eq or (b eq and c eq))"),
    ("a eq 1 and b eq 2 or c eq 3", "((a eq and b eq) or c eq)"),
    ("(a eq 1 or b eq 2) and c eq 3", "((a eq or b eq) and c eq)"),
    ("a eq 1 or b eq 2 and c eq 3 or d eq 4", "((a eq or (b eq and c eq)) or d eq)"),
    ("not (a eq 1) and b eq 2 or c eq 3", "((not(a eq) and b eq) or c eq)"),
    ('emails[type eq "work" or type eq "home" and primary eq true]',
     "emails[(type eq or (type eq and primary eq))]"),
])
def test_and_binds_tighter_than_or(text, shape):
    assert _shape(parse_filter(text)) == shape


def test_json_numbers_and_escaped_strings():
    tree = parse_filter('a eq 12.5e1 and b eq "x\\"y\\\\z"')
    left, right = tree.expr.expr1.expr, tree.expr.expr2.expr
    assert left.comp_value.value == "12.5e1" and not isinstance(left.comp_value.value, QuotedString)
    assert right.comp_value.value == 'x"y\\z' and isinstance(right.comp_value.value, QuotedString)


def test_quoted_true_is_a_string_and_bare_true_is_a_boolean():
    quoted = parse_filter('title eq "true"').expr.comp_value.value
    bare = parse_filter("active eq true").expr.comp_value.value
    assert isinstance(quoted, QuotedString)
    assert not isinstance(bare, QuotedString)


@pytest.mark.parametrize("text", ["", "userName eq", 'userName xx "a"', "(userName eq \"a\"", "userName eq 'a'"])
def test_malformed_filters_are_invalid_filter(text):
    with pytest.raises(ScimError) as err:
        parse_filter(text)
    assert err.value.status == 400 and err.value.scim_type == "invalidFilter"


def test_patch_paths():
    assert parse_path("name.givenName").attribute == "name"
    p = parse_path('emails[type eq "work"].value')
    assert (p.attribute, p.sub_attribute) == ("emails", "value") and p.value_filter is not None
    p = parse_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value")
    assert p.attribute == "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"
    assert p.sub_attribute == "value"
    with pytest.raises(ScimError) as err:
        parse_path('emails[type eq "work"')
    assert err.value.scim_type == "invalidPath"
