"""Engine and session set-up, and the one-transaction-per-request rule.

SQLite needs three things to behave like a server database under concurrent
gunicorn workers: WAL mode (readers never block the writer), foreign keys
switched on, and write transactions that take the write lock up front
(``BEGIN IMMEDIATE``), so that two read-modify-write requests serialise instead
of failing with "database is locked" when both try to upgrade their read lock.
"""
from __future__ import annotations

import contextvars

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

#: Set by the HTTP layer for requests that will write; read when a transaction begins.
write_intent: contextvars.ContextVar[bool] = contextvars.ContextVar("write_intent", default=False)


def normalise_url(url: str) -> str:
    """Accept the ``postgresql://`` and ``postgres://`` spellings and use psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, pool_size=8, max_overflow=8, connect_args={"timeout": 30})
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy (below) decide when a transaction starts and how.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # LIKE must respect caseExact; case-insensitive matching lower()s both sides explicitly.
        cursor.execute("PRAGMA case_sensitive_like=ON")
        cursor.close()
        # SQLite's lower() folds ASCII only; Danish names need Æ/Ø/Å folded too, in filters and
        # in the case-insensitive userName index alike.
        dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write_intent.get() else "BEGIN")


def _unicode_lower(value):
    return value.lower() if isinstance(value, str) else value


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False, autoflush=False)
