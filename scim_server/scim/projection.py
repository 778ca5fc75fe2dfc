"""``attributes`` and ``excludedAttributes`` (RFC 7644 §3.4.2.5, §3.9).

A Projection is built once per request from the query parameters, checked
against the schema (an unknown name is ignored, as the RFC allows), and asked
twice: before the query (``wants`` decides whether a group's members or a
user's groups are loaded at all) and after it (``apply`` shapes each resource).
``returned`` comes from the schema: ``always`` cannot be excluded, ``never`` is
never shown, ``request`` only when named.
"""
from __future__ import annotations

from typing import Any

from .schemas import Attribute, ResourceType

# (schema urn or "" for core/common, attribute name lower, sub-attribute name lower or "")
Key = tuple[str, str, str]


def _split(value: str | None) -> list[str]:
    if not value:
        return []
    return [part.strip() for part in value.split(",") if part.strip()]


class Projection:
    def __init__(self, rt: ResourceType, attributes: str | None = None, excluded: str | None = None):
        self.rt = rt
        self.included = self._keys(_split(attributes))
        self.excluded = self._keys(_split(excluded)) if not self.included else set()
        self.only = bool(self.included)
        #: nothing to shape: no parameters, and the schemas hide nothing by default
        self.everything = not self.included and not self.excluded and not rt.hidden_by_default

    def _keys(self, names: list[str]) -> set[Key]:
        keys: set[Key] = set()
        for name in names:
            schema, rest = self.rt.split_urn(name)
            if schema is not None and not rest:  # a whole extension
                keys.update((schema.id.lower() if schema is not self.rt.core else "", a.name.lower(), "")
                            for a in schema.attributes.values())
                continue
            resolved = self.rt.resolve(name)
            if resolved is None:
                continue
            attr, sub = resolved
            keys.add((self._urn(attr), attr.name.lower(), sub.name.lower() if sub else ""))
        return keys

    def _urn(self, attr: Attribute) -> str:
        return "" if attr.schema == self.rt.core.id else attr.schema.lower()

    # ---------------------------------------------------------------- queries
    def wants(self, attr: Attribute) -> bool:
        """Will this top-level attribute appear in the response (before sub-attribute pruning)?"""
        if attr.returned == "never":
            return False
        if attr.returned == "always":
            return True
        urn, name = self._urn(attr), attr.name.lower()
        if self.only:
            return any(k[0] == urn and k[1] == name for k in self.included)
        if attr.returned == "request":
            return False
        return (urn, name, "") not in self.excluded

    def wants_name(self, name: str) -> bool:
        attr = self.rt.top_level(name)
        return attr is not None and self.wants(attr)

    # ---------------------------------------------------------------- shaping
    def apply(self, resource: dict[str, Any]) -> dict[str, Any]:
        """Shape a serialised resource (``marshal.dump`` has already left out ``returned: never``)."""
        if self.everything:
            return resource
        out: dict[str, Any] = {}
        for key, value in resource.items():
            if key == "schemas":
                out[key] = value
                continue
            ext = self.rt.schema(key) if key.startswith("urn:") else None
            if ext is not None:
                inner = {k: v2 for k, v in value.items()
                         if (v2 := self._attribute(ext.attribute(k), v)) is not None}
                if inner:
                    out[key] = inner
                continue
            shaped = self._attribute(self.rt.top_level(key), value)
            if shaped is not None:
                out[key] = shaped
        return out

    def _attribute(self, attr: Attribute | None, value: Any) -> Any:
        if attr is None or not self.wants(attr):
            return None
        if not attr.is_complex or attr.returned == "always":
            return value
        urn, name = self._urn(attr), attr.name.lower()
        if self.only:
            subs = {k[2] for k in self.included if k[0] == urn and k[1] == name}
            if "" in subs:
                return self._strip_subs(attr, value, lambda s: True)
            return self._strip_subs(attr, value, lambda s: s.returned == "always" or s.name.lower() in subs)
        excluded = {k[2] for k in self.excluded if k[0] == urn and k[1] == name}
        return self._strip_subs(
            attr, value,
            lambda s: s.returned == "always" or (s.returned == "default" and s.name.lower() not in excluded),
        )

    @staticmethod
    def _strip_subs(attr: Attribute, value: Any, keep) -> Any:
        def one(item: Any) -> Any:
            if not isinstance(item, dict):
                return item
            kept = {}
            for k, v in item.items():
                sub = attr.sub(k)
                if sub is not None and sub.returned != "never" and keep(sub):
                    kept[k] = v
            return kept or None

        if isinstance(value, list):
            items = [v for v in (one(i) for i in value) if v is not None]
            return items or None
        return one(value)
