"""The server's own secrets, kept in the database (``server_secrets``).

A secret must be the same in every worker process and on every host, or a cursor made by
one worker is refused by the next: a random value per process would not do, and an
environment variable would be one more thing every deployment must get right. The database
is what all of them share. The migration makes the secret; if the row is ever gone (a
restored dump, a test that empties every table) the first worker to notice makes a new one,
and a worker that loses the race reads the winner's. Each process reads it once.
"""
from __future__ import annotations

import secrets
import threading

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from .models import ServerSecret

_known: dict[tuple[str, str], bytes] = {}
_lock = threading.Lock()


def server_secret(engine: Engine, name: str) -> bytes:
    """The secret called ``name`` (32 bytes), made on its first use if the migration did not."""
    cache_key = (engine.url.render_as_string(hide_password=True), name)
    known = _known.get(cache_key)
    if known is None:
        with _lock:
            known = _known.get(cache_key) or _read_or_make(engine, name)
            _known[cache_key] = known
    return known


def _read_or_make(engine: Engine, name: str) -> bytes:
    query = select(ServerSecret.value).where(ServerSecret.name == name)
    with engine.connect() as connection:
        value = connection.scalar(query)
        if value is None:
            try:
                connection.execute(insert(ServerSecret).values(name=name, value=secrets.token_hex(32)))
                connection.commit()
            except IntegrityError:  # another worker made it first: theirs counts
                connection.rollback()
            value = connection.scalar(query)
    return bytes.fromhex(value)
