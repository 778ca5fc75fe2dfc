"""What the console's overview shows about the API's use: when each token last authenticated a
request (``bearer_tokens.last_used_at``) and the requests answered with an error
(``request_errors``).

Both are written beside the request, never in it: each write is its own short transaction on
its own session, made after the response has gone (``http.auth`` and ``http.requestlog``
schedule them), so a request's transaction, its locks and its outcome are never touched, and a
failure to record (a database that is busy or gone) is logged and dropped: the record is a
convenience, the request is the work. On SQLite the write takes the write lock briefly, queued
like any writer's; at once a minute per token and once per failed request, that is little.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import logging
from collections.abc import Iterator

from sqlalchemy import delete, insert, update
from sqlalchemy.orm import Session, sessionmaker

from .db import defer_write_lock, read_only, write_intent
from .models import BearerToken, RequestError, utcnow

log = logging.getLogger(__name__)

#: a token's last use is written at most this often (the overview shows it to the minute)
TOUCH_INTERVAL = dt.timedelta(seconds=60)
#: request errors are kept this long
ERROR_RETENTION = dt.timedelta(days=7)
#: one ``record_error`` call in this many also deletes the tenant's expired errors
PRUNE_EVERY = 100

_calls = itertools.count(1)


@contextlib.contextmanager
def _own_transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A write transaction of its own, whatever the request around it was: the contextvars that
    steer SQLite's transactions (``storage.db``) say "a writer, lock at once", so it queues with
    the other writers for the lock instead of polling, and holds it for one statement."""
    tokens = (write_intent.set(True), read_only.set(False), defer_write_lock.set(False))
    try:
        with sessions.begin() as session:
            yield session
    finally:
        defer_write_lock.reset(tokens[2])
        read_only.reset(tokens[1])
        write_intent.reset(tokens[0])


def touch_token(sessions: sessionmaker[Session], token_id: str, now: dt.datetime) -> None:
    """Stamp ``now`` as the token's last use, unless a stamp of the last minute is there already
    (another worker's): the UPDATE's condition decides, so workers never race to a wrong value
    and a busy token costs one write a minute per worker at most. Errors are logged, not raised."""
    try:
        with _own_transaction(sessions) as session:
            session.execute(update(BearerToken)
                            .where(BearerToken.id == token_id,
                                   (BearerToken.last_used_at.is_(None))
                                   | (BearerToken.last_used_at < now - TOUCH_INTERVAL))
                            .values(last_used_at=now)
                            .execution_options(synchronize_session=False))
    except Exception:  # noqa: BLE001 - recording a use must never fail anything
        log.warning("could not record the last use of token %s", token_id, exc_info=True)


def _fit(value: str | None, column) -> str | None:
    """``value`` cut to the column's size, as a string every database stores (no NUL, no lone
    surrogate: a request's path or an error's detail may carry what its client sent)."""
    if value is None:
        return None
    text = str(value).replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    return text[:column.type.length]


def record_error(sessions: sessionmaker[Session], tenant_id: int, actor: str, request_id: str | None,
                 method: str, path: str, status: int, scim_type: str | None, detail: str | None,
                 now: dt.datetime | None = None) -> None:
    """Keep one failed request of a tenant's caller (``RequestError``), strings cut to their
    columns' sizes. Every ``PRUNE_EVERY``-th call also deletes the tenant's errors older than
    ``ERROR_RETENTION``, in the same short transaction: the table stays at a week's errors
    without a job of its own. Errors are logged, not raised."""
    now = now or utcnow()
    columns = RequestError.__table__.c
    row = {"tenant_id": tenant_id, "at": now, "actor": _fit(actor, columns.actor) or "",
           "request_id": _fit(request_id, columns.request_id), "method": _fit(method, columns.method) or "",
           "path": _fit(path, columns.path) or "", "status": int(status),
           "scim_type": _fit(scim_type, columns.scim_type), "detail": _fit(detail, columns.detail)}
    prune = next(_calls) % PRUNE_EVERY == 0
    try:
        with _own_transaction(sessions) as session:
            session.execute(insert(RequestError).values(**row))
            if prune:
                session.execute(delete(RequestError)
                                .where(RequestError.tenant_id == tenant_id, RequestError.at < now - ERROR_RETENTION)
                                .execution_options(synchronize_session=False))
    except Exception:  # noqa: BLE001 - recording an error must never fail anything
        log.warning("could not record a failed request of tenant %s (%s %s %s)", tenant_id, method, path, status,
                    exc_info=True)
