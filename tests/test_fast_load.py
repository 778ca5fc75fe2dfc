"""``scim.fast_load`` loads exactly what marshmallow loads (without nulls), or steps aside.

Generated documents of every resource type, with values of the right type, the wrong type,
nulls, nested objects and lists, go through both: where the fast walk answers, marshmallow
must answer the same (keys in the same order); where marshmallow refuses, the fast walk must
not answer. And the documents IdPs and syncs send must take the fast walk."""
from __future__ import annotations

import json
import random

import pytest

from scim_server.scim import fast_load, marshal
from scim_server.scim.errors import ScimError
from scim_server.scim.schemas import CORE_USER, ENTERPRISE_USER, registry
from scim_server.scim.validators import P2L_USER

SCALARS = ["text", "", "a\x00b", 7, -1, 2.5, True, False, "True", "false", "2026-01-31T12:00:00Z",
           "2026-13-45", "aGVsbG8=", "not base64!", None, 10**20]


def _value(attr, rnd: random.Random, depth: int = 0):
    roll = rnd.random()
    if roll < 0.1:
        return rnd.choice(SCALARS)
    if roll < 0.15:
        return {"x": 1} if rnd.random() < 0.5 else ["x"]
    if attr.multi_valued and roll < 0.9:
        return [_single(attr, rnd, depth) for _ in range(rnd.randint(0, 3))]
    return _single(attr, rnd, depth)


def _single(attr, rnd: random.Random, depth: int):
    if attr.is_complex and depth < 2:
        subs = list(attr.sub_attributes.values())
        picked = rnd.sample(subs, rnd.randint(0, len(subs)))
        item = {sub.name: _value(sub, rnd, depth + 1) for sub in picked}
        if rnd.random() < 0.1:
            item["unknownSub"] = "x"
        return item
    if rnd.random() < 0.3:
        return rnd.choice(SCALARS)
    return {"string": "ok", "reference": "https://example.org/x", "boolean": rnd.choice([True, False, "True"]),
            "integer": rnd.randint(-5, 5), "decimal": rnd.choice([1.5, 3]), "dateTime": "2026-02-01T08:00:00+01:00",
            "binary": "aGVsbG8="}.get(attr.type, "ok")


def _document(rt, rnd: random.Random) -> dict:
    doc: dict = {"schemas": [rt.core.id] + [e.id for e in rt.extensions]}
    attrs = list({**rt.common, **rt.core.attributes}.values())
    for attr in rnd.sample(attrs, rnd.randint(1, len(attrs))):
        doc[attr.name] = _value(attr, rnd)
    for ext in rt.extensions:
        if rnd.random() < 0.7:
            ext_attrs = list(ext.attributes.values())
            doc[ext.id] = {a.name: _value(a, rnd) for a in rnd.sample(ext_attrs, rnd.randint(0, len(ext_attrs)))}
    return doc


def _both(rt, document: dict):
    """(fast walk's answer or None, marshmallow's answer or "refused")."""
    schema_class = marshal._resource_schema_class(rt)
    try:
        fast = fast_load.load(schema_class, document)
    except fast_load.Unsure:
        fast = None
    try:
        slow = marshal.without_nones(schema_class(unknown="exclude").load(document))
    except marshal.ValidationError:
        slow = "refused"
    return fast, slow


@pytest.mark.parametrize("name", ["User", "Group"])
def test_the_fast_walk_answers_as_marshmallow_or_not_at_all(name):
    rt = registry().resource_type(name)
    rnd = random.Random(20261207)
    answered = refused = 0
    for _ in range(3000):
        document = _document(rt, rnd)
        if rnd.random() < 0.7:  # else as the PATCH engine may leave it: nulls inside included
            try:
                document = marshal.canonicalise(rt, document)
            except ScimError:
                continue
        fast, slow = _both(rt, document)
        if slow == "refused":
            refused += 1
            assert fast is None, document
        elif fast is not None:
            answered += 1
            assert json.dumps(fast, sort_keys=False, default=str) == json.dumps(slow, sort_keys=False, default=str)
    assert answered > 100 and refused > 100  # both kinds of document were generated


def test_what_idps_and_syncs_send_takes_the_fast_walk():
    rt = registry().resource_type("User")
    entra = {"schemas": [CORE_USER, ENTERPRISE_USER, P2L_USER], "userName": "anna@acme.dk", "active": "True",
             "displayName": "Anna Berg", "name": {"givenName": "Anna", "familyName": "Berg", "formatted": "Anna Berg"},
             "emails": [{"value": "anna@acme.dk", "type": "work", "primary": True}],
             "phoneNumbers": [{"value": "+45 1234", "type": "work"}, {"value": "+45 5678", "type": "mobile"}],
             "addresses": [{"type": "work", "streetAddress": "Vej 1", "locality": "Aarhus", "postalCode": "8000",
                            "country": "DK", "primary": True}],
             "externalId": "1001", "title": "Lærer",
             ENTERPRISE_USER: {"employeeNumber": "1001", "department": "Skole", "manager": {"value": "m-1"}},
             P2L_USER: {"ean": "5790000000005", "employments": [
                 {"value": "u-1", "title": "Lærer", "startDate": "2020-01-01T00:00:00Z", "primary": True}]}}
    document = marshal.canonicalise(rt, entra)
    fast, slow = _both(rt, document)
    assert fast is not None and fast == slow
    assert marshal.load(rt, document)["active"] is True
