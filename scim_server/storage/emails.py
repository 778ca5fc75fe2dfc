"""Users' work e-mail addresses, kept in a table of their own (``WorkEmail``) beside the
user's document.

The data-quality check for shared addresses compares every user's work e-mails with every
other's. Read from the documents, that is a JSON parse of each of a tenant's users per page
view (1.4 s at 100,000 users on SQLite); read from this table it is a pass over one index.
The user store writes the rows whenever it writes a user's document (create, replace, patch,
Bulk and sync alike), so they are never older than the document they copy.

A *work* e-mail is one of the user's ``emails`` with ``type`` "work" or no type at all (a
client that sends one address often leaves the type out). Addresses are compared
case-insensitively, so they are stored lower-cased (Python's ``str.lower``, the same folding on
every database). An address longer than ``MAX_LENGTH`` (RFC 5321 allows 254 characters in a
path) is no address anyone can share, and is not copied.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, tuple_
from sqlalchemy.orm import Session

from .models import User, WorkEmail

MAX_LENGTH = 320


def work_emails(document: Mapping[str, Any] | None) -> frozenset[str]:
    """The lower-cased work e-mail addresses of a user's stored document (``users.attributes``)."""
    out = set()
    for email in (document or {}).get("emails") or ():
        if not isinstance(email, dict):
            continue
        kind, value = email.get("type"), email.get("value")
        if (kind is None or (isinstance(kind, str) and kind.lower() == "work")) \
                and isinstance(value, str) and value.strip() and len(value) <= MAX_LENGTH:
            out.add(value.strip().lower())
    return frozenset(out)


def store(session: Session | Connection, tenant_id: int,
          changes: Iterable[tuple[str, frozenset[str], frozenset[str]]]) -> None:
    """Write the differences: for each (user id, addresses stored before, addresses now) the
    rows that went are deleted and the new ones inserted, two statements for all users.
    A new user's "before" is empty."""
    gone: list[tuple[str, str]] = []
    new: list[dict[str, Any]] = []
    for user_id, before, after in changes:
        gone += [(user_id, email) for email in before - after]
        new += [{"user_id": user_id, "email": email, "tenant_id": tenant_id} for email in after - before]
    if gone:
        session.execute(_DELETE, {"pairs": gone})
    if new:
        session.execute(_INSERT, new)


def store_tenant(session: Session | Connection, tenant_id: int, batch: int = 5000) -> None:
    """Copy the work e-mails of every user of a tenant from their documents, replacing what was
    copied before: for writers that insert users themselves rather than through the user store
    (the demo tenant, the bench seeds). A batch of users at a time, by id."""
    users = User.__table__
    session.execute(delete(_TABLE).where(_TABLE.c.tenant_id == tenant_id))
    last = ""
    while True:
        rows = session.execute(select(users.c.id, users.c.attributes)
                               .where(users.c.tenant_id == tenant_id, users.c.id > last)
                               .order_by(users.c.id).limit(batch)).all()
        if not rows:
            return
        store(session, tenant_id, [(user_id, frozenset(), work_emails(document)) for user_id, document in rows])
        last = rows[-1].id


_TABLE = WorkEmail.__table__
# built once: a write of a user runs them, and building costs more than running
_INSERT = insert(_TABLE)
_DELETE = delete(_TABLE).where(tuple_(_TABLE.c.user_id, _TABLE.c.email).in_(bindparam("pairs", expanding=True)))
