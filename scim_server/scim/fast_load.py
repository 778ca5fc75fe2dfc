"""The input schema's load, walked without marshmallow's machinery where it cannot fail.

``marshal.load`` type-checks every write with the marshmallow schema generated from the
registry. For a plain Entra or HR user that is some fifty field calls and eight nested
``Schema.load`` calls, each with its error store and hooks: 0.25-0.4 ms a user, half of a
Bulk create's time and of a first sync's. Almost all of it is structure (objects within
lists within extensions) and strings, where nothing can go wrong once the types are right.

``load`` walks the same schema, field by field as marshmallow would, in its order, and
produces what ``Schema.load`` produces for such a document. A string is taken as marshmallow's
``String`` takes it (and ``ScimString`` without U+0000); any other leaf value is passed to its
own marshmallow field's ``deserialize``. Anything it is not sure of (a type that is not the
expected one, a null where none is allowed, a field with validators or hooks, a leaf that
marshmallow refuses) raises ``Unsure``: the caller then loads the document with marshmallow
itself, which gives the error its wording and path. So this never accepts what marshmallow
would refuse, and never loads a value differently (``tests/test_fast_load.py`` compares the
two on generated documents).
"""
from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from marshmallow import EXCLUDE, ValidationError, fields
from marshmallow import Schema as MarshmallowSchema

#: a compiled field: value in, loaded value out (or ``Unsure``)
Loader = Callable[[Any], Any]


class Unsure(Exception):
    """The fast walk cannot vouch for this document: let marshmallow load it."""


#: String fields that load a ``str`` as itself, unless it holds one of these characters
_STRINGS: dict[type[fields.Field], str] = {fields.String: ""}


def string_field(field_class: type[fields.String], refused: str) -> None:
    """Declare a ``String`` subclass that differs only in refusing the characters ``refused``
    (``marshal.ScimString``: U+0000), so that its values are checked here, not by a call."""
    _STRINGS[field_class] = refused


def load(schema_class: type[MarshmallowSchema], document: dict[str, Any]) -> dict[str, Any]:
    """What ``schema_class(unknown=EXCLUDE).load(document)`` returns (keys as the schema's
    attribute names, in its field order) without its nulls (SCIM's "no value": what
    ``marshal.without_nones`` would make of it, in the same pass), or ``Unsure``."""
    return _schema_loader(schema_class)(document)


@cache
def _schema_loader(schema_class: type[MarshmallowSchema]) -> Loader:
    schema = schema_class()
    plan = [(field.data_key if field.data_key is not None else name, name, _field_loader(field))
            for name, field in schema.load_fields.items()]

    def load_schema(value: Any) -> dict[str, Any]:
        if type(value) is not dict:
            raise Unsure
        out: dict[str, Any] = {}
        for key, name, loader in plan:
            if key in value:
                loaded = loader(value[key])
                if loaded is not None:
                    out[name] = loaded
        return out

    return load_schema


def _field_loader(field: fields.Field) -> Loader:
    if field.validators or field.pre_load or field.post_load:
        return _marshmallow_leaf(field)
    allow_none = field.allow_none
    if isinstance(field, fields.Nested) and not field.many and isinstance(field.nested, type) \
            and field.unknown == EXCLUDE and field.only is None and not field.exclude:
        inner = _schema_loader(field.nested)

        def load_nested(value: Any) -> Any:
            if value is None and allow_none:
                return None
            return inner(value)

        return load_nested
    if type(field) is fields.List:
        each = _field_loader(field.inner)

        def load_list(value: Any) -> Any:
            if value is None and allow_none:
                return None
            if type(value) is not list:
                raise Unsure
            return [loaded for loaded in map(each, value) if loaded is not None]

        return load_list
    if type(field) in _STRINGS:
        refused = frozenset(_STRINGS[type(field)])

        def load_string(value: Any) -> Any:
            if type(value) is str and (not refused or refused.isdisjoint(value)):
                return value
            if value is None and allow_none:
                return None
            raise Unsure

        return load_string
    return _marshmallow_leaf(field)


def _marshmallow_leaf(field: fields.Field) -> Loader:
    """Any other field: marshmallow's own ``deserialize`` of the value (a refusal is Unsure:
    the whole document then goes through marshmallow, for the error's path and wording)."""

    def load_leaf(value: Any) -> Any:
        try:
            return field.deserialize(value)
        except ValidationError:
            raise Unsure from None

    return load_leaf
