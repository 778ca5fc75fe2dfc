"""Validation and serialisation with marshmallow schemas generated from the registry.

Input goes through two steps. ``canonicalise`` maps every key to the schema's
spelling (SCIM names are case-insensitive), drops what the client may not set
(readOnly attributes, unknown keys) and turns JSON nulls into absence. The
generated marshmallow schema then checks types and required attributes. Output
goes through a schema generated the same way, whose ``returned: never`` fields are
load-only, so a password can never be serialised by mistake. The output schema
passes a value whole (an attribute, or a whole extension) when nothing inside it is
``returned: never``: every stored value was loaded (type-checked, sub-attribute by
sub-attribute) on its way in, and checking it again field by field cost two thirds of a
resource's serialisation.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
from functools import cache, lru_cache
from typing import Any, NamedTuple

from marshmallow import EXCLUDE, ValidationError, fields
from marshmallow import Schema as MarshmallowSchema

from . import fast_load, validators
from .errors import invalid_value
from .schemas import Attribute, ResourceType

_TRUE = {True, "true", "True", "TRUE"}
_FALSE = {False, "false", "False", "FALSE"}


class ScimBoolean(fields.Boolean):
    """JSON booleans, plus the "True"/"False" strings Entra ID and Keycloak send."""

    truthy = _TRUE
    falsy = _FALSE


class ScimDateTime(fields.Field):
    """An xsd:dateTime, stored in one canonical UTC form so that text comparison is chronological."""

    default_error_messages = {"invalid": "Not a valid dateTime (expected e.g. 2026-01-31T12:00:00Z)."}

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            return format_datetime(dt.datetime.fromisoformat(value.strip()))
        except (ValueError, OverflowError) as exc:  # overflow: in UTC, before year 1 or after 9999
            raise self.make_error("invalid") from exc

    def _serialize(self, value, attr, obj, **kwargs):
        return value


class ScimString(fields.String):
    """A string without U+0000: PostgreSQL cannot store one, so neither database takes it."""

    default_error_messages = {"nul": "Contains U+0000, which no attribute can hold."}

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise self.make_error("nul")
        return text


fast_load.string_field(ScimString, refused="\x00")


class ScimBinary(fields.String):
    default_error_messages = {"invalid_base64": "Not valid base64."}

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise self.make_error("invalid_base64") from exc
        return text


def format_datetime(value: dt.datetime) -> str:
    """RFC 3339 in UTC with a ``Z``; microseconds only when present."""
    if value.tzinfo is not None and value.utcoffset():
        value = value.astimezone(dt.UTC)
    # isoformat, not strftime: every resource's meta has two of these, and strftime is 3x slower
    return value.replace(tzinfo=None).isoformat(timespec="microseconds" if value.microsecond else "seconds") + "Z"


def _field_for(attr: Attribute) -> fields.Field:
    kwargs: dict[str, Any] = {"allow_none": True}
    if attr.returned == "never":
        kwargs["load_only"] = True
    if attr.is_complex:
        single: fields.Field = fields.Nested(_complex_schema(attr), unknown=EXCLUDE)
    elif attr.type == "boolean":
        single = ScimBoolean()
    elif attr.type == "integer":
        single = fields.Integer(strict=True)
    elif attr.type == "decimal":
        single = fields.Float()
    elif attr.type == "dateTime":
        single = ScimDateTime()
    elif attr.type == "binary":
        single = ScimBinary()
    else:  # string, reference
        single = ScimString()
    if attr.multi_valued:
        return fields.List(single, **kwargs)
    if attr.is_complex:
        return fields.Nested(_complex_schema(attr), unknown=EXCLUDE, **kwargs)
    single.allow_none = True
    single.load_only = kwargs.get("load_only", False)
    return single


def _output_field_for(attr: Attribute) -> fields.Field:
    """The field that serialises an attribute (see the module docstring)."""
    if not _hides_inside(attr):
        return fields.Raw(allow_none=True, load_only=attr.returned == "never")
    return _field_for(attr)


def _hides_inside(attr: Attribute) -> bool:
    """Has the attribute a ``returned: never`` sub-attribute, which serialisation must cut out?"""
    return any(sub.returned == "never" for sub in attr.sub_attributes.values())


def _complex_schema(attr: Attribute) -> type[MarshmallowSchema]:
    return MarshmallowSchema.from_dict(
        {sub.name: _field_for(sub) for sub in attr.sub_attributes.values()},
        name=f"{attr.schema.rsplit(':', 1)[-1]}_{attr.path.replace('.', '_').replace('$', '')}",
    )


@cache
def resource_schema(rt: ResourceType) -> MarshmallowSchema:
    """The marshmallow schema of a whole resource: common, core and extension attributes."""
    return _resource_schema_class(rt)(unknown=EXCLUDE)


def _schema_for(rt: ResourceType, document: dict[str, Any], output: bool = False) -> MarshmallowSchema:
    """The resource schema limited to the attributes a document has (marshmallow's ``only``):
    a user has a dozen of the seventy-odd attributes, and the others are skipped entirely."""
    return _partial_schema(rt, tuple(document), output)


@lru_cache(maxsize=1024)
def _partial_schema(rt: ResourceType, keys: tuple[str, ...], output: bool) -> MarshmallowSchema:
    """Cached by the document's keys as they come: the same code paths produce the same keys."""
    names = {_internal_name(k) if k.startswith("urn:") else k for k in keys}
    return _resource_schema_class(rt, output)(only=frozenset(names & resource_schema(rt).fields.keys()),
                                              unknown=EXCLUDE)


@cache
def _resource_schema_class(rt: ResourceType, output: bool = False) -> type[MarshmallowSchema]:
    """The schema that loads input or, with ``output``, the one that serialises resources."""
    field_for = _output_field_for if output else _field_for
    declared: dict[str, fields.Field] = {"schemas": fields.List(fields.String())}
    for attr in [*rt.common.values(), *rt.core.attributes.values()]:
        declared[attr.name] = field_for(attr)
    for ext in rt.extensions:
        # marshmallow reads dots in field names as nesting ("2.0" in every URN), so an extension
        # is a field with a dot-free internal name (see _to_internal) and its URN as data_key.
        if output and not any(a.returned == "never" or _hides_inside(a) for a in ext.attributes.values()):
            declared[_internal_name(ext.id)] = fields.Raw(allow_none=True, data_key=ext.id)
            continue
        ext_fields = {a.name: field_for(a) for a in ext.attributes.values()}
        declared[_internal_name(ext.id)] = fields.Nested(
            MarshmallowSchema.from_dict(ext_fields, name=f"ext_{ext.name}{'_out' if output else ''}"),
            unknown=EXCLUDE, allow_none=True, data_key=ext.id,
        )
    return MarshmallowSchema.from_dict(declared, name=f"{rt.name}Resource{'Output' if output else ''}")


def _internal_name(urn: str) -> str:
    return "ext:" + urn.replace(".", "_")


def _to_internal(rt: ResourceType, document: dict[str, Any]) -> dict[str, Any]:
    names = {e.id: _internal_name(e.id) for e in rt.extensions}
    return {names.get(k, k): v for k, v in document.items()}


def _from_internal(rt: ResourceType, document: dict[str, Any]) -> dict[str, Any]:
    names = {_internal_name(e.id): e.id for e in rt.extensions}
    return {names.get(k, k): v for k, v in document.items()}


# ---------------------------------------------------------------------------- input


def canonicalise(rt: ResourceType, payload: dict[str, Any], *, keep_read_only: bool = False) -> dict[str, Any]:
    """Map keys to canonical names, drop unknown keys, nulls and (unless asked) readOnly attributes.

    Extension attributes are accepted under their URN key. ``schemas`` is kept as sent.
    """
    out: dict[str, Any] = {}
    for key, value in payload.items():
        if not isinstance(key, str):
            continue
        if key.lower() == "schemas":
            out["schemas"] = value
            continue
        ext = rt.schema(key) if key.lower().startswith("urn:") else None
        if ext is not None and ext is not rt.core:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise invalid_value(f"'{ext.id}' must be a JSON object of that extension's attributes")
            inner = _canonical_attrs(ext.attributes, value, keep_read_only)
            if inner:
                out[ext.id] = inner
            continue
        if ext is rt.core:  # attributes nested under the core URN are core attributes
            if isinstance(value, dict):
                out.update(_canonical_attrs({**rt.common, **rt.core.attributes}, value, keep_read_only))
            continue
        attr = rt.top_level(key)
        if attr is None:
            continue
        cleaned = _canonical_value(attr, value, keep_read_only)
        if cleaned is not None:
            out[attr.name] = cleaned
    return out


def _canonical_attrs(attrs: dict[str, Attribute], payload: dict[str, Any], keep_read_only: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in payload.items():
        attr = attrs.get(key.lower()) if isinstance(key, str) else None
        if attr is None:
            continue
        cleaned = _canonical_value(attr, value, keep_read_only)
        if cleaned is not None:
            out[attr.name] = cleaned
    return out


def _canonical_value(attr: Attribute, value: Any, keep_read_only: bool) -> Any:
    if value is None or (attr.read_only and not keep_read_only):
        return None
    if attr.multi_valued:
        if not isinstance(value, list):
            raise invalid_value(f"Attribute '{attr.path}' is multi-valued: send a JSON array")
        items = [_canonical_single(attr, v, keep_read_only) for v in value]
        items = [v for v in items if v is not None and v != {}]
        return items or None
    return _canonical_single(attr, value, keep_read_only)


def _canonical_single(attr: Attribute, value: Any, keep_read_only: bool) -> Any:
    if value is None:
        return None
    if attr.is_complex:
        if not isinstance(value, dict):
            raise invalid_value(f"Attribute '{attr.path}' must be a complex value (a JSON object)")
        inner = _canonical_attrs(attr.sub_attributes, value, keep_read_only)
        return inner or None
    if attr.type == "string" and value == "" and attr.parent is None and not attr.required:
        return None  # an empty string clears an optional attribute (Entra's validator)
    return value


def check_schemas(rt: ResourceType, body: dict[str, Any]) -> None:
    """A resource's ``schemas`` must name its core schema (RFC 7643 §3); extra URIs are tolerated."""
    schemas = next((v for k, v in body.items() if isinstance(k, str) and k.lower() == "schemas"), None)
    if schemas is None:
        return
    if not isinstance(schemas, list) or not all(isinstance(s, str) for s in schemas):
        raise invalid_value("'schemas' must be an array of schema URIs")
    if rt.core.id.lower() not in {s.lower() for s in schemas}:
        raise invalid_value(f"'schemas' must include {rt.core.id} for a {rt.name}")


def load(rt: ResourceType, document: dict[str, Any], stored: dict[str, Any] | None = None) -> dict[str, Any]:
    """Type-check a canonical document, enforce required attributes and one ``primary`` per list.

    ``stored``: the stored document this one was made from (by a PATCH). Attributes still equal
    to their stored value were checked when they were stored and are not loaded again; the
    checks across attributes (required, primary, validators) still see the whole document.
    Returns the cleaned document; raises ScimError(400 invalidValue) naming the attribute.
    """
    kept = {k: v for k, v in document.items() if k in stored and stored[k] == v} if stored else {}
    changed = {k: v for k, v in document.items() if k not in kept}
    try:
        data = fast_load.load(_resource_schema_class(rt), changed)  # without nulls already
    except fast_load.Unsure:  # marshmallow itself: it refuses, or the fast walk was not sure
        try:
            data = without_nones(_schema_for(rt, changed).load(changed))
        except ValidationError as exc:
            raise invalid_value("Invalid attribute value: " + _describe(exc.messages)) from exc
    data = {**kept, **_from_internal(rt, data)}
    _check_required(rt, data)
    _check_primary(rt, data)
    return validators.apply(data)


def without_nones(value: Any) -> Any:
    """A copy of a JSON document without a None anywhere inside (in SCIM, null means "no
    value"): its dicts and lists new, its strings, numbers and booleans shared (they cannot
    change). Most values are strings: they are kept without a call of their own."""
    if isinstance(value, dict):
        return {k: without_nones(v) if isinstance(v, _NESTED) else v for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nones(v) if isinstance(v, _NESTED) else v for v in value if v is not None]
    return value


_NESTED = (dict, list)


def _describe(messages: Any, prefix: str = "") -> str:
    if isinstance(messages, dict):
        parts = []
        for key, inner in messages.items():
            path = f"{prefix}.{key}" if prefix and not str(key).isdigit() else (
                f"{prefix}[{key}]" if prefix else str(key))
            parts.append(_describe(inner, path))
        return "; ".join(parts)
    if isinstance(messages, list):
        return f"'{prefix}': " + " ".join(str(m) for m in messages)
    return f"'{prefix}': {messages}"


class _Checks(NamedTuple):
    """The attributes the checks across a document look at, per container (None: the core
    schema, else an extension's URN): found once per resource type, not per request."""

    required: list[tuple[str | None, Attribute]]
    required_subs: list[tuple[str | None, Attribute, list[Attribute]]]
    primary: list[tuple[str | None, Attribute]]


@lru_cache(maxsize=64)
def _checks(rt: ResourceType) -> _Checks:
    containers = [(None, rt.core)] + [(e.id, e) for e in rt.extensions]
    return _Checks(
        # a read-only core attribute (id) is the server's to set; extensions' have none
        [(key, attr) for key, schema in containers for attr in schema.attributes.values()
         if attr.required and (key is not None or not attr.read_only)],
        [(key, attr, subs) for key, schema in containers for attr in schema.attributes.values()
         if attr.is_complex and (subs := [sub for sub in attr.sub_attributes.values()
                                          if sub.required and not sub.read_only])],
        [(key, attr) for key, schema in containers for attr in schema.attributes.values()
         if attr.multi_valued and attr.is_complex and attr.sub("primary") is not None],
    )


def _container(data: dict[str, Any], key: str | None) -> dict[str, Any]:
    return data if key is None else (data.get(key) or {})


def _check_required(rt: ResourceType, data: dict[str, Any]) -> None:
    checks = _checks(rt)
    for key, attr in checks.required:
        container = _container(data, key)
        if key is not None and not container:
            continue  # an extension the resource does not use
        if container.get(attr.name) in (None, "", []):
            raise invalid_value(f"Attribute '{attr.name if key is None else f'{key}:{attr.name}'}' is required")
    for key, attr, subs in checks.required_subs:
        container = _container(data, key)
        if attr.name not in container:
            continue
        for item in container[attr.name] if attr.multi_valued else [container[attr.name]]:
            for sub in subs:
                if item.get(sub.name) in (None, ""):
                    raise invalid_value(f"Sub-attribute '{attr.name}.{sub.name}' is required")


def _check_primary(rt: ResourceType, data: dict[str, Any]) -> None:
    for key, attr in _checks(rt).primary:
        items = _container(data, key).get(attr.name) or []
        if sum(1 for item in items if item.get("primary") is True) > 1:
            raise invalid_value(f"At most one '{attr.name}' value may be primary")


# ---------------------------------------------------------------------------- output


def dump(rt: ResourceType, document: dict[str, Any]) -> dict[str, Any]:
    """Serialise a full resource document; ``returned: never`` attributes cannot pass."""
    return without_nones(_schema_for(rt, document, output=True).dump(_to_internal(rt, document)))


def canonical_value(attr: Attribute, value: Any) -> Any:
    """Canonicalise a value meant for one attribute (a PATCH operation's value)."""
    return _canonical_value(attr, value, keep_read_only=False)


def check_immutable(rt: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
    """An immutable attribute, once it has a value, keeps it (RFC 7643 §2.2): else 400 mutability."""
    containers = [(rt.common | rt.core.attributes, old, new)]
    containers += [(e.attributes, old.get(e.id) or {}, new.get(e.id) or {}) for e in rt.extensions]
    for attrs, before, after in containers:
        for attr in attrs.values():
            if attr.mutability == "immutable":
                if attr.name in before and before[attr.name] != after.get(attr.name):
                    from .errors import mutability
                    raise mutability(f"Attribute '{attr.name}' is immutable")


def load_attribute(attr: Attribute, value: Any) -> Any:
    """Type-check the value of one attribute (e.g. values of a row-backed attribute)."""
    try:
        loaded = _field_for(attr).deserialize(value)
    except ValidationError as exc:
        raise invalid_value(f"Invalid value for '{attr.path}': " + _describe(exc.messages, attr.path)) from exc
    return without_nones(loaded)
