"""The schema registry: the one source of attribute metadata.

Everything the server knows about an attribute (type, multiValued, caseExact,
mutability, returned, uniqueness, sub-attributes) is read from the schema
definitions in the repository's ``schemas/`` folder. /Schemas serves those files,
marshmallow validation is generated from them (``marshal``), the filter compiler
and sortBy consult them, and projection follows their ``returned`` rules.

Names are case-insensitive everywhere in SCIM (RFC 7643 §2.1), so every lookup
here goes through lower-cased keys while the canonical spelling is kept for output.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

SCHEMA_DIR_ENV = "SCIM_SCHEMA_DIR"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@dataclass(eq=False)
class Attribute:
    """One attribute or sub-attribute definition (RFC 7643 §7)."""

    name: str
    type: str
    multi_valued: bool
    required: bool
    case_exact: bool
    mutability: str
    returned: str
    uniqueness: str
    schema: str
    parent: Attribute | None = None
    canonical_values: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    sub_attributes: dict[str, Attribute] = field(default_factory=dict)

    @classmethod
    def from_definition(cls, raw: dict[str, Any], schema: str, parent: Attribute | None = None) -> Attribute:
        attr = cls(
            name=raw["name"],
            type=raw.get("type", "string"),
            multi_valued=bool(raw.get("multiValued", False)),
            required=bool(raw.get("required", False)),
            case_exact=bool(raw.get("caseExact", False)),
            mutability=raw.get("mutability", "readWrite"),
            returned=raw.get("returned", "default"),
            uniqueness=raw.get("uniqueness", "none"),
            schema=schema,
            parent=parent,
            canonical_values=tuple(raw.get("canonicalValues", ())),
            reference_types=tuple(raw.get("referenceTypes", ())),
        )
        for sub in raw.get("subAttributes", ()):
            attr.sub_attributes[sub["name"].lower()] = cls.from_definition(sub, schema, attr)
        return attr

    def sub(self, name: str) -> Attribute | None:
        return self.sub_attributes.get(name.lower())

    @cached_property  # asked for every value of every write (``marshal.canonicalise``)
    def is_complex(self) -> bool:
        return self.type == "complex"

    @property
    def path(self) -> str:
        """Dotted name within its schema, e.g. ``name.givenName``."""
        return f"{self.parent.name}.{self.name}" if self.parent else self.name

    @property
    def key(self) -> str:
        """A unique, lower-cased key: ``emails`` for core attributes, ``<urn>:<name>`` for extensions."""
        own = self.name.lower() if self.parent is None else f"{self.parent.name}.{self.name}".lower()
        core = self.schema.lower() in (CORE_USER.lower(), CORE_GROUP.lower())
        return own if core else f"{self.schema.lower()}:{own}"

    @cached_property
    def read_only(self) -> bool:
        return self.mutability == "readOnly"

    @property
    def filterable(self) -> bool:
        """Attributes never returned cannot be filtered: that would leak them (RFC 7644 §3.4.2.2)."""
        return self.returned != "never" and self.type != "binary"


@dataclass(eq=False)
class Schema:
    """A schema (core or extension) as served by /Schemas, with its attributes indexed."""

    id: str
    name: str
    definition: dict[str, Any]
    attributes: dict[str, Attribute]

    @classmethod
    def load(cls, raw: dict[str, Any]) -> Schema:
        attrs = {a["name"].lower(): Attribute.from_definition(a, raw["id"]) for a in raw["attributes"]}
        return cls(id=raw["id"], name=raw.get("name", ""), definition=raw, attributes=attrs)

    def attribute(self, name: str) -> Attribute | None:
        return self.attributes.get(name.lower())


@dataclass(eq=False)
class ResourceType:
    """A resource type (User, Group): its core schema, extensions and common attributes."""

    id: str
    name: str
    endpoint: str
    definition: dict[str, Any]
    core: Schema
    extensions: list[Schema]
    common: dict[str, Attribute]
    #: paths resolved so far (every response asks for the same few; bounded, as clients name paths)
    _resolved: dict[str, tuple[Attribute, Attribute | None] | None] = field(default_factory=dict, repr=False)

    @cached_property
    def schema_urns(self) -> dict[str, Schema]:
        """Every schema URN of this type, lower-cased, to its schema."""
        return {s.id.lower(): s for s in [self.core, *self.extensions]}

    def schema(self, urn: str) -> Schema | None:
        return self.schema_urns.get(urn.lower())

    def top_level(self, name: str) -> Attribute | None:
        """A top-level core or common attribute by unqualified name."""
        key = name.lower()
        return self.common.get(key) or self.core.attributes.get(key)

    def split_urn(self, path: str) -> tuple[Schema | None, str]:
        """Split ``urn:...:User:manager.value`` into (extension schema, ``manager.value``).

        A path that is exactly a schema URN returns that schema and ``""``.
        A path without a known URN prefix returns (None, path).
        """
        lowered = path.lower()
        if not lowered.startswith("urn:"):
            return None, path
        best: Schema | None = None
        for urn, schema in self.schema_urns.items():
            if lowered == urn:
                return schema, ""
            if lowered.startswith(urn + ":") and (best is None or len(urn) > len(best.id)):
                best = schema
        if best is None:
            return None, path
        return best, path[len(best.id) + 1:]

    def resolve(self, path: str) -> tuple[Attribute, Attribute | None] | None:
        """Resolve an attribute path (``userName``, ``name.givenName``, ``urn:..:manager.value``)
        to (attribute, sub-attribute or None). None when unknown."""
        try:
            return self._resolved[path]
        except KeyError:
            pass
        found = self._resolve(path)
        if len(self._resolved) < 10_000:
            self._resolved[path] = found
        return found

    def _resolve(self, path: str) -> tuple[Attribute, Attribute | None] | None:
        schema, rest = self.split_urn(path)
        if schema is not None and not rest:
            return None
        head, _, tail = rest.partition(".")
        if schema is None:
            attr = self.top_level(head)
        else:
            attr = schema.attribute(head)
            if attr is None and schema is self.core:
                attr = self.common.get(head.lower())
        if attr is None:
            return None
        if not tail:
            return attr, None
        sub = attr.sub(tail)
        if sub is None:
            return None
        return attr, sub

    @cached_property
    def hidden_by_default(self) -> bool:
        """Does a response without ``attributes``/``excludedAttributes`` leave anything out
        besides top-level ``returned: never`` attributes (which serialisation never writes)?"""
        for attr in self.iter_attributes():
            if attr.returned == "request":
                return True
            if any(sub.returned in ("request", "never") for sub in attr.sub_attributes.values()):
                return True
        return False

    def iter_attributes(self) -> Iterator[Attribute]:
        """Every top-level attribute: common, core, then extensions."""
        yield from self.common.values()
        yield from self.core.attributes.values()
        for ext in self.extensions:
            yield from ext.attributes.values()


class Registry:
    """All schemas and resource types, loaded once from the schema folder."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.schemas: dict[str, Schema] = {}
        for file in sorted(directory.glob("*.json")):
            raw = json.loads(file.read_text(encoding="utf-8"))
            if isinstance(raw, dict) and "id" in raw and "attributes" in raw:
                schema = Schema.load(raw)
                self.schemas[schema.id.lower()] = schema
        common_raw = json.loads((directory / "common.json").read_text(encoding="utf-8"))
        self.resource_types: dict[str, ResourceType] = {}
        self._variants: dict[tuple[str, frozenset[str]], ResourceType] = {}
        for rt_raw in json.loads((directory / "resource-types.json").read_text(encoding="utf-8")):
            core = self.schemas[rt_raw["schema"].lower()]
            common = {
                a["name"].lower(): Attribute.from_definition(a, core.id) for a in common_raw["attributes"]
            }
            exts = [self.schemas[e["schema"].lower()] for e in rt_raw.get("schemaExtensions", ())]
            rt = ResourceType(
                id=rt_raw["id"], name=rt_raw["name"], endpoint=rt_raw["endpoint"],
                definition=rt_raw, core=core, extensions=exts, common=common,
            )
            self.resource_types[rt.name] = rt

    def schema(self, urn: str) -> Schema | None:
        return self.schemas.get(urn.lower())

    def resource_type(self, name: str, without: frozenset[str] = frozenset()) -> ResourceType | None:
        """A resource type, optionally without some extensions (a tenant that does not use them)."""
        for rt in self.resource_types.values():
            if rt.name.lower() == name.lower() or rt.id.lower() == name.lower():
                return self._variant(rt, without) if without else rt
        return None

    def all_resource_types(self, without: frozenset[str] = frozenset()) -> list[ResourceType]:
        return [self._variant(rt, without) if without else rt for rt in self.resource_types.values()]

    def _variant(self, rt: ResourceType, without: frozenset[str]) -> ResourceType:
        key = (rt.name, without)
        cached = self._variants.get(key)
        if cached is None:
            extensions = [e for e in rt.extensions if e.id not in without]
            definition = {**rt.definition, "schemaExtensions": [
                e for e in rt.definition.get("schemaExtensions", ()) if e["schema"] not in without]}
            cached = self._variants[key] = ResourceType(
                id=rt.id, name=rt.name, endpoint=rt.endpoint, definition=definition,
                core=rt.core, extensions=extensions, common=rt.common)
        return cached


def default_schema_dir() -> Path:
    """``$SCIM_SCHEMA_DIR``; else ``scim_server/schemas``, where an installed wheel carries the
    repository's ``schemas/`` (``setup.py`` maps it there); else, in a source checkout or an
    editable install, the repository's ``schemas/`` beside the package."""
    configured = os.environ.get(SCHEMA_DIR_ENV)
    if configured:
        return Path(configured)
    package = Path(__file__).resolve().parent.parent
    installed = package / "schemas"
    if installed.is_dir():
        return installed
    return package.parent / "schemas"


_registry: Registry | None = None


def registry() -> Registry:
    """The process-wide registry (schemas do not change while the server runs)."""
    global _registry
    if _registry is None:
        _registry = Registry(default_schema_dir())
    return _registry
