"""JSON document access in SQL, for SQLite (JSON1) and PostgreSQL (jsonb).

Attributes without a column of their own live in the ``attributes`` document.
The two databases spell "read a key", "read a boolean", "iterate an array" and
"gather rows into an array" differently; this module is the only place that knows
both spellings, so the filter resolver and the stores above it stay dialect-free.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Float, String, cast, func, literal_column
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql import column
from sqlalchemy.sql.elements import ColumnElement


def _sqlite_path(keys: tuple[str, ...]) -> str:
    # Quoted keys survive URNs with ':' and '.', and '$ref'.
    return "$" + "".join('."' + k.replace('"', '\\"') + '"' for k in keys)


class JsonDialect:
    """Builds SQL over a JSON column for one database dialect."""

    def __init__(self, dialect_name: str):
        self.pg = dialect_name == "postgresql"

    # ------------------------------------------------------------- scalars
    def text(self, doc: ColumnElement[Any], keys: tuple[str, ...]) -> ColumnElement[Any]:
        if self.pg:
            return (doc[keys] if len(keys) > 1 else doc[keys[0]]).as_string()
        return func.json_extract(doc, _sqlite_path(keys), type_=String())

    def boolean(self, doc: ColumnElement[Any], keys: tuple[str, ...]) -> ColumnElement[Any]:
        if self.pg:
            return cast(self.text(doc, keys), Boolean)
        return func.json_extract(doc, _sqlite_path(keys), type_=Boolean())

    def number(self, doc: ColumnElement[Any], keys: tuple[str, ...]) -> ColumnElement[Any]:
        if self.pg:
            return cast(self.text(doc, keys), Float)
        return func.json_extract(doc, _sqlite_path(keys), type_=Float())

    def present(self, doc: ColumnElement[Any], keys: tuple[str, ...]) -> ColumnElement[Any]:
        if self.pg:
            return (doc[keys] if len(keys) > 1 else doc[keys[0]]).isnot(None)
        return func.json_type(doc, _sqlite_path(keys)).isnot(None)

    # -------------------------------------------------------------- arrays
    def elements(self, doc: ColumnElement[Any], keys: tuple[str, ...]):
        """A table-valued FROM item with one row per array element, column ``value``."""
        if self.pg:
            array = doc[keys] if len(keys) > 1 else doc[keys[0]]
            return func.jsonb_array_elements(array).table_valued(column("value", JSONB)).alias()
        return func.json_each(doc, _sqlite_path(keys)).table_valued("value").alias()

    def element_text(self, value: ColumnElement[Any], key: str | None) -> ColumnElement[Any]:
        """A key of one array element (``None``: the element itself, for simple arrays)."""
        if self.pg:
            if key is None:
                return value.op("#>>")(literal_column("'{}'"))
            return value[key].astext
        if key is None:
            return value
        return func.json_extract(value, _sqlite_path((key,)), type_=String())

    def element_boolean(self, value: ColumnElement[Any], key: str) -> ColumnElement[Any]:
        if self.pg:
            return cast(value[key].astext, Boolean)
        return func.json_extract(value, _sqlite_path((key,)), type_=Boolean())

    def element_number(self, value: ColumnElement[Any], key: str) -> ColumnElement[Any]:
        if self.pg:
            return cast(value[key].astext, Float)
        return func.json_extract(value, _sqlite_path((key,)), type_=Float())

    # ---------------------------------------------------------- aggregates
    def objects(self, fields: dict[str, ColumnElement[Any]]) -> ColumnElement[Any]:
        """An aggregate: each row as a JSON object with ``fields`` as its keys, all of them in one
        JSON array (``[]`` for no rows), read back as a list of dicts. The array's order is
        whatever the database's is: a caller that needs an order sorts the list."""
        pairs = [part for key, value in fields.items() for part in (literal_column(f"'{key}'"), value)]
        if self.pg:
            return func.coalesce(func.json_agg(func.json_build_object(*pairs)),
                                 literal_column("'[]'::json"), type_=JSON())
        return func.json_group_array(func.json_object(*pairs), type_=JSON())
