"""The PATCH engine: RFC 7644 §3.5.2, and nothing but.

``parse_operations`` checks the PatchOp envelope; ``apply`` runs the operations
in order against a copy of the resource's document and returns the new
document. Attributes that storage keeps as rows rather than inside the document
(a group's ``members``) are handed to a ``RowCollection``, so adding one member
touches one row, however large the group.

IdPs' deviations from the RFC are rewritten *before* this runs, by ``quirks``;
this file stays the RFC, so that it can be read against the RFC.
All operations succeed or the request fails: the caller runs them in one
database transaction, and this module raises before anything is written on
the first invalid operation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from scim2_filter_parser import ast

from .errors import ScimError, invalid_syntax, invalid_value, mutability, no_target
from .filter_parser import Path, parse_path
from .marshal import canonical_value, canonicalise, load_attribute, without_nones
from .schemas import Attribute, ResourceType, Schema
from .value_filter import matches

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
OPERATIONS = ("add", "replace", "remove")


@dataclass
class PatchOperation:
    op: str
    path: Path | None
    value: Any = None
    raw_path: str | None = None


class RowCollection(Protocol):
    """A multi-valued attribute stored as rows (a group's members, a user's employments).

    Collections are keyed by ``Attribute.key``. ``value_filter`` None means every value.
    ``add`` and ``replace`` get values loaded against the attribute (``marshal.load_attribute``
    here, ``marshal.load`` for a whole resource), so a collection does not check types again.
    """

    def add(self, values: list[dict[str, Any]]) -> None: ...
    def replace(self, values: list[dict[str, Any]]) -> None: ...
    def remove(self, value_filter: ast.Filter | None) -> None: ...
    def set_sub(self, value_filter: ast.Filter | None, sub: Attribute, value: Any) -> None: ...
    def remove_sub(self, value_filter: ast.Filter | None, sub: Attribute) -> None: ...


def parse_operations(body: Any, max_operations: int) -> list[dict[str, Any]]:
    """Check the PatchOp envelope and return the raw operations (quirks run on these)."""
    if not isinstance(body, dict):
        raise invalid_syntax("A PATCH body must be a JSON object")
    schemas = body.get("schemas") or body.get("Schemas")
    if not isinstance(schemas, list) or PATCH_OP.lower() not in [str(s).lower() for s in schemas]:
        raise invalid_syntax(f"A PATCH body must list the schema {PATCH_OP}")
    operations = next((v for k, v in body.items() if k.lower() == "operations"), None)
    if not isinstance(operations, list) or not operations:
        raise invalid_syntax("A PATCH body needs a non-empty 'Operations' array")
    if len(operations) > max_operations:
        raise ScimError(413, f"At most {max_operations} operations per PATCH request", "tooMany")
    for op in operations:
        if not isinstance(op, dict):
            raise invalid_syntax("Each operation must be a JSON object")
    return operations


def to_operation(raw: dict[str, Any]) -> PatchOperation:
    """One raw operation (after quirk normalisation) as a typed PatchOperation."""
    lowered = {str(k).lower(): v for k, v in raw.items()}
    op = lowered.get("op")
    if not isinstance(op, str) or op.lower() not in OPERATIONS:
        raise invalid_syntax(f"Unknown PATCH op {op!r}: use add, replace or remove")
    raw_path = lowered.get("path")
    if raw_path is not None and not isinstance(raw_path, str):
        raise invalid_syntax("'path' must be a string")
    path = parse_path(raw_path) if raw_path else None
    if op.lower() != "remove" and "value" not in lowered:
        raise invalid_syntax(f"The '{op}' operation needs a 'value'")
    if op.lower() == "remove" and path is None:
        raise no_target("A remove operation needs a 'path'")
    return PatchOperation(op.lower(), path, lowered.get("value"), raw_path)


def apply(rt: ResourceType, document: dict[str, Any], operations: list[PatchOperation],
          collections: dict[str, RowCollection] | None = None) -> dict[str, Any]:
    """Apply the operations in order to a copy of ``document`` and return it."""
    engine = start(rt, document, collections)
    for operation in operations:
        engine.run(operation)
    return engine.doc


def start(rt: ResourceType, document: dict[str, Any],
          collections: dict[str, RowCollection] | None = None) -> _Engine:
    """An engine working on one copy of ``document`` (``engine.doc``), to run a request's
    operations one at a time: the IdP quirk normaliser looks at the document between two."""
    return _Engine(rt, without_nones(document), collections or {})


@dataclass
class _Target:
    schema: Schema | None            # extension schema, or None for core/common
    attr: Attribute | None           # None: the whole extension
    sub: Attribute | None
    value_filter: ast.Filter | None


class _Engine:
    def __init__(self, rt: ResourceType, doc: dict[str, Any], collections: dict[str, RowCollection]):
        self.rt = rt
        self.doc = doc
        self.collections = collections

    # ----------------------------------------------------------- dispatch
    def run(self, op: PatchOperation) -> None:
        if op.path is None:
            self._pathless(op)
            return
        target = self._resolve(op.path, op.raw_path or "")
        if target.attr is None:
            self._whole_extension(op, target.schema)
            return
        self._check_writable(target)
        collection = self.collections.get(target.attr.key)
        if collection is not None:
            self._on_rows(op, target, collection)
            return
        container = self._container(target.schema, create=op.op != "remove")
        if container is None:
            return
        if target.value_filter is not None:
            self._filtered(op, target, container)
        elif target.sub is not None:
            self._sub_attribute(op, target, container)
        else:
            self._attribute(op, target.attr, container, op.value)

    def _resolve(self, path: Path, raw: str) -> _Target:
        schema, rest = self.rt.split_urn(path.attribute)
        if schema is not None and not rest:
            if path.sub_attribute or path.value_filter is not None:
                raise _invalid_path(raw)
            return _Target(schema if schema is not self.rt.core else None, None, None, None)
        name = rest if schema is not None else path.attribute
        if schema is None or schema is self.rt.core:
            attr = self.rt.top_level(name)
            schema = None
        else:
            attr = schema.attribute(name)
        if attr is None:
            raise _invalid_path(raw)
        sub = None
        if path.sub_attribute:
            sub = attr.sub(path.sub_attribute)
            if sub is None:
                raise _invalid_path(raw)
        if path.value_filter is not None and not (attr.multi_valued and attr.is_complex):
            raise _invalid_path(raw, "a value filter needs a multi-valued complex attribute")
        return _Target(schema, attr, sub, path.value_filter)

    def _check_writable(self, target: _Target) -> None:
        for attr in (target.attr, target.sub):
            if attr is not None and attr.read_only:
                raise mutability(f"Attribute '{attr.path}' is readOnly")

    def _container(self, schema: Schema | None, create: bool) -> dict[str, Any] | None:
        if schema is None:
            return self.doc
        if schema.id not in self.doc:
            if not create:
                return None
            self.doc[schema.id] = {}
        return self.doc[schema.id]

    # ------------------------------------------------------------ no path
    def _pathless(self, op: PatchOperation) -> None:
        if not isinstance(op.value, dict):
            raise invalid_syntax(f"A '{op.op}' without a path needs an object 'value'")
        values = canonicalise(self.rt, op.value)
        values.pop("schemas", None)
        for key, value in values.items():
            ext = self.rt.schema(key) if key.startswith("urn:") else None
            if ext is not None:
                self._whole_extension(PatchOperation(op.op, None, value), ext)
            else:
                self._attribute(op, self.rt.top_level(key), self.doc, value, canonical=True)

    def _whole_extension(self, op: PatchOperation, schema: Schema | None) -> None:
        if schema is None:
            raise invalid_syntax("The core schema cannot be targeted as a whole")
        if op.op == "remove":
            self.doc.pop(schema.id, None)
            return
        if not isinstance(op.value, dict):
            raise invalid_value(f"'{schema.id}' needs an object value")
        container = self._container(schema, create=True)
        for key, value in op.value.items():
            attr = schema.attribute(key) if isinstance(key, str) else None
            if attr is None or attr.read_only:
                continue
            self._attribute(op, attr, container, value)
        if not container:
            self.doc.pop(schema.id, None)

    # ------------------------------------------------------ plain attribute
    def _attribute(self, op: PatchOperation, attr: Attribute, container: dict[str, Any], value: Any,
                   canonical: bool = False) -> None:
        collection = self.collections.get(attr.key)
        if collection is not None:
            self._on_rows(PatchOperation(op.op, None, value), _Target(None, attr, None, None), collection)
            return
        if op.op == "remove":
            container.pop(attr.name, None)
            return
        new = value if canonical else canonical_value(attr, value)
        if new is None:
            if op.op == "replace":
                container.pop(attr.name, None)
            return
        if attr.multi_valued:
            existing = container.get(attr.name) or []
            if op.op == "add":
                merged = list(existing) + [v for v in new if v not in existing]
            else:
                merged = list(new)
            container[attr.name] = _one_primary(merged, preferred=[v for v in new if _is_primary(v)])
        elif attr.is_complex and isinstance(container.get(attr.name), dict):
            container[attr.name] = {**container[attr.name], **new}
        else:
            container[attr.name] = new

    def _sub_attribute(self, op: PatchOperation, target: _Target, container: dict[str, Any]) -> None:
        attr, sub = target.attr, target.sub
        if attr.multi_valued:  # emails.value without a filter: every value
            items = container.get(attr.name) or []
            if op.op != "remove" and not items:
                raise no_target(f"'{attr.name}' has no values to set '{sub.name}' on")
            for item in items:
                self._set_sub(op, sub, item)
            return
        current = container.get(attr.name)
        if op.op == "remove":
            if isinstance(current, dict):
                current.pop(sub.name, None)
                if not current:
                    container.pop(attr.name, None)
            return
        if not isinstance(current, dict):
            current = container[attr.name] = {}
        self._set_sub(op, sub, current)
        if not current:
            container.pop(attr.name, None)

    def _set_sub(self, op: PatchOperation, sub: Attribute, item: dict[str, Any]) -> None:
        if op.op == "remove":
            item.pop(sub.name, None)
            return
        new = canonical_value(sub, op.value)
        if new is None:
            item.pop(sub.name, None)
        else:
            item[sub.name] = new

    def _filtered(self, op: PatchOperation, target: _Target, container: dict[str, Any]) -> None:
        attr = target.attr
        items = container.get(attr.name) or []
        selected = [i for i, item in enumerate(items) if matches(attr, target.value_filter, item)]
        if not selected:
            if op.op == "remove":
                return
            raise no_target(f"No value of '{attr.name}' matches the filter in '{op.raw_path}'")
        if op.op == "remove" and target.sub is None:
            remaining = [item for i, item in enumerate(items) if i not in selected]
            if remaining:
                container[attr.name] = remaining
            else:
                container.pop(attr.name, None)
            return
        preferred = []
        for i in selected:
            if target.sub is not None:
                self._set_sub(op, target.sub, items[i])
            else:
                # the path selects values, so "value" is one value (an object); a one-element
                # array is tolerated
                one = op.value[0] if isinstance(op.value, list) and len(op.value) == 1 else op.value
                new = (canonical_value(attr, [one]) or [{}])[0]
                items[i] = {**items[i], **new} if op.op == "add" else new
            if _is_primary(items[i]):
                preferred.append(items[i])
        items = [item for item in items if item]
        container[attr.name] = _one_primary(items, preferred)
        if not container[attr.name]:
            container.pop(attr.name, None)

    # --------------------------------------------------------------- rows
    def _on_rows(self, op: PatchOperation, target: _Target, collection: RowCollection) -> None:
        if target.sub is not None:
            if op.op == "remove":
                collection.remove_sub(target.value_filter, target.sub)
            else:
                collection.set_sub(target.value_filter, target.sub, canonical_value(target.sub, op.value))
            return
        if op.op == "remove":
            collection.remove(target.value_filter)
            return
        values = load_attribute(target.attr, canonical_value(target.attr, op.value) or []) or []
        if op.op == "add":
            collection.add(values)
        elif target.value_filter is not None:
            collection.remove(target.value_filter)
            collection.add(values)
        else:
            collection.replace(values)


def _is_primary(value: Any) -> bool:
    return isinstance(value, dict) and value.get("primary") in (True, "true", "True")


def _one_primary(items: list[Any], preferred: list[Any]) -> list[Any]:
    """Setting one value primary makes every other value non-primary (RFC 7644 §3.5.2)."""
    if not preferred:
        return items
    keep = preferred[-1]
    return [({**item, "primary": False} if item is not keep and _is_primary(item) else item) for item in items]


def _invalid_path(raw: str, why: str = "no such attribute") -> ScimError:
    return ScimError(400, f"Invalid path '{raw}': {why}", "invalidPath")
