"""The IdP quirk normaliser: real clients' deviations, rewritten into RFC 7644 form.

Microsoft Entra ID and Okta send PATCH operations and resources that the RFC
does not allow but that a server must accept to provision without failures
(see the README's "Identity providers" section). Each deviation is one small
named function below, rewriting raw operations before the RFC-pure engine in
``patch`` sees them. A function receives one raw operation (a dict) and returns
the list of operations that replace it. Adding a quirk means adding a function
to ``PATCH_QUIRKS``; no other file changes.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from scim2_filter_parser import ast

from .. import jsontext
from .errors import invalid_value
from .filter_parser import parse_path
from .schemas import ENTERPRISE_USER, Attribute, ResourceType
from .value_filter import matches

RawOp = dict[str, Any]
MICROSOFT_GROUP_SCHEMA = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"


class Context:
    """What a quirk may look at: the resource type and the resource as it is now."""

    def __init__(self, rt: ResourceType, document: dict[str, Any]):
        self.rt = rt
        self.document = document
        self._targets: dict[str, Any] = {}  # path -> attribute_of(path): most quirks ask

    def attribute_of(self, path: Any) -> tuple[Attribute, Attribute | None, ast.Filter | None] | None:
        if not isinstance(path, str) or not path:
            return None
        if path not in self._targets:
            self._targets[path] = self._resolve(path)
        return self._targets[path]

    def _resolve(self, path: str) -> tuple[Attribute, Attribute | None, ast.Filter | None] | None:
        try:
            parsed = parse_path(path)
        except Exception:
            return None  # the engine reports the bad path
        name = parsed.attribute + (f".{parsed.sub_attribute}" if parsed.sub_attribute else "")
        resolved = self.rt.resolve(name)
        if resolved is None:
            return None
        attr, sub = resolved
        return attr, sub, parsed.value_filter


def _get(op: RawOp, key: str) -> Any:
    return next((v for k, v in op.items() if str(k).lower() == key), None)


def _has(op: RawOp, key: str) -> bool:
    return any(str(k).lower() == key for k in op)


def _op(op: RawOp) -> str:
    return str(_get(op, "op") or "").lower()


# ------------------------------------------------------------------- quirks


def capitalised_op(op: RawOp, ctx: Context) -> list[RawOp]:
    """Entra ID sends ``"op": "Replace"`` / ``"Add"`` / ``"Remove"`` (RFC: lower case)."""
    out = {k: v for k, v in op.items() if str(k).lower() not in ("op", "path", "value")}
    out["op"] = _op(op) or _get(op, "op")
    if _has(op, "path"):
        out["path"] = _get(op, "path")
    if _has(op, "value"):
        out["value"] = _get(op, "value")
    return [out]


def unqualified_extension_path(op: RawOp, ctx: Context) -> list[RawOp]:
    """Entra ID's documented sample sets ``"path": "manager"``, an enterprise extension attribute,
    without its schema URN. A path naming no core attribute but exactly one extension attribute
    is qualified with that extension's URN."""
    path = op.get("path")
    if not isinstance(path, str) or not path or path.lower().startswith("urn:"):
        return [op]
    name = path.split("[", 1)[0].split(".", 1)[0]
    if ctx.rt.top_level(name) is not None:
        return [op]
    owners = [ext for ext in ctx.rt.extensions if ext.attribute(name) is not None]
    if len(owners) != 1:
        return [op]
    return [{**op, "path": f"{owners[0].id}:{path}"}]


def dotted_and_urn_keys(op: RawOp, ctx: Context) -> list[RawOp]:
    """Entra ID (aadOptscim062020) sends one pathless replace whose keys are paths:
    ``{"name.givenName": "B", "urn:...:enterprise:2.0:User:employeeNumber": "7"}``.
    Each such key becomes its own operation with that path."""
    value = op.get("value")
    if "path" in op or op.get("op") not in ("add", "replace") or not isinstance(value, dict):
        return [op]
    plain: dict[str, Any] = {}
    split: list[RawOp] = []
    for key, item in value.items():
        whole_schema = isinstance(key, str) and ctx.rt.schema(key) is not None
        if isinstance(key, str) and not whole_schema and ("." in key or key.lower().startswith("urn:")):
            split.append({"op": op["op"], "path": key, "value": item})
        else:
            plain[key] = item
    if not split:
        return [op]
    return ([{"op": op["op"], "value": plain}] if plain else []) + split


def member_removal_by_value(op: RawOp, ctx: Context) -> list[RawOp]:
    """Entra ID removes group members with ``{"op":"Remove","path":"members","value":[{"value":"id"}]}``;
    the RFC would remove every member. Only the listed values are removed."""
    if op.get("op") != "remove" or not isinstance(op.get("value"), list):
        return [op]
    target = ctx.attribute_of(op.get("path"))
    if target is None or target[1] is not None or target[2] is not None:
        return [op]
    attr = target[0]
    if not attr.multi_valued or attr.sub("value") is None:
        return [op]
    ops = []
    for item in op["value"]:
        member = item.get("value") if isinstance(item, dict) else item
        if member is not None:
            ops.append({"op": "remove", "path": f'{op["path"]}[value eq {json.dumps(str(member))}]'})
    return ops


def manager_forms(op: RawOp, ctx: Context) -> list[RawOp]:
    """Entra ID sets the enterprise ``manager`` as a bare id string, clears it with ``""``,
    older samples send a one-element array, and some send ``remove manager[value eq "id"]``."""
    target = ctx.attribute_of(op.get("path"))
    if target is None or target[0].name != "manager" or target[0].schema != ENTERPRISE_USER or target[1]:
        return [op]
    path = op["path"].split("[", 1)[0]
    if op.get("op") == "remove":
        return [{"op": "remove", "path": path}]
    value = op.get("value")
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = {"value": str(value)} if str(value) != "" else None
    if value is None or (isinstance(value, dict) and value.get("value") in (None, "")):
        return [{"op": "remove", "path": path}]
    return [{"op": op["op"], "path": path, "value": value}]


def boolean_strings(op: RawOp, ctx: Context) -> list[RawOp]:
    """Entra ID sends booleans as strings: ``{"path": "active", "value": "False"}``."""
    def fix(attr: Attribute | None, value: Any) -> Any:
        if attr is not None and attr.type == "boolean" and isinstance(value, str) \
                and value.lower() in ("true", "false"):
            return value.lower() == "true"
        return value

    if "value" not in op:
        return [op]
    target = ctx.attribute_of(op.get("path"))
    if target is not None:
        attr, sub, _ = target
        return [{**op, "value": fix(sub or attr, op["value"])}]
    if "path" not in op and isinstance(op["value"], dict):
        return [{**op, "value": {k: fix(ctx.rt.top_level(k) if isinstance(k, str) else None, v)
                                 for k, v in op["value"].items()}}]
    return [op]


def empty_value_clears(op: RawOp, ctx: Context) -> list[RawOp]:
    """Entra ID's validator clears an attribute with ``replace`` to ``""`` or ``null``."""
    if op.get("op") not in ("add", "replace") or op.get("value") not in ("", None) or "path" not in op:
        return [op]
    target = ctx.attribute_of(op.get("path"))
    if target is None or target[0].read_only:
        return [op]
    return [{"op": "remove", "path": op["path"]}]


def roles_as_json_strings(op: RawOp, ctx: Context) -> list[RawOp]:
    """Entra ID's PATCH sends app roles as JSON text inside ``value``:
    ``[{"value": "{\\"id\\":\\"…\\",\\"value\\":\\"25\\",\\"displayName\\":\\"Role\\"}"}]``."""
    target = ctx.attribute_of(op.get("path"))
    if target is None or target[0].name != "roles" or not isinstance(op.get("value"), list):
        return [op]
    decoded = []
    for item in op["value"]:
        inner = item.get("value") if isinstance(item, dict) else None
        if isinstance(inner, str) and inner.strip().startswith("{"):
            try:
                role = jsontext.loads_bounded(inner)
            except jsontext.TooDeep as exc:
                raise invalid_value(f"A role sent as JSON text is too deeply nested: {exc}") from exc
            except ValueError:
                decoded.append(item)
                continue
            decoded.append({k: v for k, v in {
                "value": role.get("value") if role.get("value") is not None else role.get("id"),
                "display": role.get("displayName"),
                "type": item.get("type"), "primary": item.get("primary"),
            }.items() if v is not None})
        else:
            decoded.append(item)
    return [{**op, "value": decoded}]


def typed_value_creates(op: RawOp, ctx: Context) -> list[RawOp]:
    """Entra ID writes ``emails[type eq "work"].value`` (also phoneNumbers, addresses) with
    add or replace even when the user has no work email yet, and expects it created.
    The RFC answers noTarget; here the value is added with the filter's ``eq`` terms."""
    if op.get("op") not in ("add", "replace") or "value" not in op:
        return [op]
    target = ctx.attribute_of(op.get("path"))
    if target is None or target[2] is None or target[1] is None:
        return [op]
    attr, sub, value_filter = target
    terms = _equalities(value_filter)
    if terms is None:
        return [op]
    container = ctx.document
    if attr.schema != ctx.rt.core.id:
        container = ctx.document.get(attr.schema) or {}
    existing = container.get(attr.name) or []
    if any(matches(attr, value_filter, item) for item in existing if isinstance(item, dict)):
        return [op]
    path = attr.name if attr.schema == ctx.rt.core.id else f"{attr.schema}:{attr.name}"
    return [{"op": "add", "path": path, "value": [{**terms, sub.name: op["value"]}]}]


def _equalities(node) -> dict[str, Any] | None:
    """``type eq "work" and primary eq true`` as {"type": "work", "primary": True}; None otherwise."""
    if isinstance(node, ast.Filter) and not node.negated and node.namespace is None:
        return _equalities(node.expr)
    if isinstance(node, ast.LogExpr) and node.op.lower() == "and":
        left, right = _equalities(node.expr1), _equalities(node.expr2)
        return None if left is None or right is None else {**left, **right}
    if isinstance(node, ast.AttrExpr) and node.value.lower() == "eq" and not node.attr_path.sub_attr \
            and isinstance(node.attr_path.attr_name, str) and node.comp_value is not None:
        raw = node.comp_value.value
        from .filter_parser import QuotedString
        value: Any = str(raw) if isinstance(raw, QuotedString) else {"true": True, "false": False}.get(raw, raw)
        return {node.attr_path.attr_name: value}
    return None


PATCH_QUIRKS: list[Callable[[RawOp, Context], list[RawOp]]] = [
    capitalised_op,
    unqualified_extension_path,
    dotted_and_urn_keys,
    member_removal_by_value,
    manager_forms,
    boolean_strings,
    empty_value_clears,
    roles_as_json_strings,
    typed_value_creates,
]


def normalise_patch(rt: ResourceType, operations: list[RawOp], document: dict[str, Any]) -> list[RawOp]:
    """Run every quirk over every operation, in order."""
    ctx = Context(rt, document)
    ops = list(operations)
    for quirk in PATCH_QUIRKS:
        ops = [new for op in ops for new in quirk(op, ctx)]
    return ops


# ---------------------------------------------------------------- resources


def normalise_resource(rt: ResourceType, body: dict[str, Any]) -> dict[str, Any]:
    """Quirks in POST and PUT bodies.

    * Entra ID lists ``http://schemas.microsoft.com/.../ADSCIM/2.0/Group`` in a group's ``schemas``.
    * Entra ID (and Okta PUTs of an earlier GET) may carry the enterprise ``manager`` as a bare
      id string or ``""``.
    """
    body = dict(body)
    schemas = body.get("schemas")
    if isinstance(schemas, list):
        body["schemas"] = [s for s in schemas if not (isinstance(s, str) and s.lower() == MICROSOFT_GROUP_SCHEMA.lower())]
    for key, value in list(body.items()):
        if isinstance(key, str) and key.lower() == ENTERPRISE_USER.lower() and isinstance(value, dict):
            fixed = dict(value)
            for ext_key, ext_value in value.items():
                if str(ext_key).lower() == "manager":
                    if isinstance(ext_value, list):
                        ext_value = ext_value[0] if ext_value else None
                    if isinstance(ext_value, str):
                        ext_value = {"value": ext_value} if ext_value else None
                    fixed[ext_key] = ext_value
            body[key] = fixed
    return body
