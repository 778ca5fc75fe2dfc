"""Engine and session set-up, and the one-transaction-per-request rule.

SQLite needs three things to behave like a server database under concurrent
gunicorn workers: WAL mode (readers never block the writer), foreign keys
switched on, and write transactions that take the write lock up front
(``BEGIN IMMEDIATE``), so that two read-modify-write requests serialise instead
of failing with "database is locked" when both try to upgrade their read lock.
Read-only HTTP requests (``read_only``) run without a transaction, each statement in
its own snapshot, which is what PostgreSQL's READ COMMITTED gives them too.

Writers wait for each other in a queue of our own (see ``WriterQueue``), not in
SQLite's busy handler, which sleeps in steps of up to 100 ms.

A request may defer the lock (``defer_write_lock``) when the rows it reads before
writing are version-checked by the write itself (``User.version``): it reads
and computes without the lock and takes it at its first write statement. A read whose
answer decides whether a write is allowed (a cycle check, say) calls ``take_write_lock``
first. If the version check fails, the request runs again with the lock up front.
"""
from __future__ import annotations

import contextvars
import fcntl
import os
import threading
import weakref

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from .. import jsontext

#: Set by the HTTP layer for requests that will write; read when a transaction begins.
write_intent: contextvars.ContextVar[bool] = contextvars.ContextVar("write_intent", default=False)
#: Set by the HTTP layer for requests (and the parts of requests) that only read. Everything
#: else (the CLI, cron jobs) runs in a transaction, whether it writes or not.
read_only: contextvars.ContextVar[bool] = contextvars.ContextVar("read_only", default=False)
#: Set for a write whose reads need not be under the write lock (see ``take_write_lock``).
defer_write_lock: contextvars.ContextVar[bool] = contextvars.ContextVar("defer_write_lock", default=False)
_DEFERRED = "scim_deferred_writer"
_READS = frozenset({"SELECT", "WITH", "PRAGMA"})


def take_write_lock(connection) -> None:
    """Take SQLite's write lock now, if this transaction deferred it.

    The read transaction ends first (SQLite cannot upgrade a read snapshot that another
    writer has since overtaken), so rows read before may have changed since: the write's
    version check (``User.version``) finds out. PostgreSQL locks rows instead: nothing to do.
    """
    if not connection.info.get(_DEFERRED):
        return
    dbapi = connection.connection.dbapi_connection
    dbapi.execute("COMMIT")
    _queue_and_begin_immediate(connection.info.get("scim_writer_queue"), dbapi.execute)
    connection.info[_DEFERRED] = False


def _queue_and_begin_immediate(queue: WriterQueue | None, execute) -> None:
    """Wait for our turn in the writer queue, then take SQLite's write lock."""
    if queue is not None:
        queue.enter()
    try:
        execute("BEGIN IMMEDIATE")
    except BaseException:
        leave_writer_queue()
        raise


def normalise_url(url: str) -> str:
    """Accept the ``postgresql://`` and ``postgres://`` spellings and use psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


class WriterQueue:
    """Lets the writers of every worker process into SQLite one at a time, in the kernel's order.

    SQLite has one writer. The others poll: its busy handler sleeps 1, 2, 5 ... up to 100 ms
    between tries, so under concurrent writes a waiting request mostly sleeps while the lock
    stands free. An exclusive ``flock`` on a file beside the database makes them wait in the
    kernel instead, which wakes the next writer the moment the last one commits. It is held
    from ``BEGIN IMMEDIATE`` to the commit or rollback; a process that dies releases it.
    Other programs that write the database (the CLI, cron) need not take part: SQLite's own
    lock still decides, they are only not queued.
    """

    def __init__(self, database_path: str):
        self.path = database_path + "-writers.lock"
        self._local = threading.local()  # one open file per thread: flock queues open files

    def enter(self) -> None:
        handle = getattr(self._local, "handle", None)
        if handle is None:
            handle = self._local.handle = _LockFile(self.path)
        fcntl.flock(handle.fd, fcntl.LOCK_EX)
        _holding.queue = self

    def leave(self) -> None:
        fcntl.flock(self._local.handle.fd, fcntl.LOCK_UN)
        _holding.queue = None


class _LockFile:
    def __init__(self, path: str):
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def __del__(self) -> None:  # the thread ended
        os.close(self.fd)


#: the queue this thread holds, if any
_holding = threading.local()


def leave_writer_queue(*_args) -> None:
    """Leave the writer queue if this thread holds it (after a commit or rollback)."""
    queue = getattr(_holding, "queue", None)
    if queue is not None:
        queue.leave()


#: the JSON columns' codec: every read decodes a stored document, every write encodes one
_JSON_CODEC = {"json_serializer": jsontext.dumps_text, "json_deserializer": jsontext.loads}


def make_engine(url: str) -> Engine:
    """The engine for everything that may write (requests that write, the CLI, migrations).

    On SQLite, the transaction rules above are events of this engine only. Requests that only
    read use ``read_engine(engine)``: the same pool and connections, without the events, so a
    read pays nothing for rules that never apply to it.
    """
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, pool_size=8, max_overflow=8, connect_args={"timeout": 30}, **_JSON_CODEC)
        path = engine.url.database
        _configure_sqlite_connections(engine)
        writer = engine.execution_options()  # its own events, on top of the engine's (none)
        _configure_sqlite_transactions(writer, WriterQueue(os.path.abspath(path))
                                       if path and path != ":memory:" else None)
        _READ_ENGINES[writer] = engine
        return writer
    return create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True, **_JSON_CODEC)


#: writer engine -> the engine it was made from, whose connections carry no transaction events
_READ_ENGINES: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


def read_engine(engine: Engine) -> Engine:
    """The engine for requests that only read: on SQLite, ``engine`` without its transaction
    events; on PostgreSQL, ``engine`` in autocommit (READ COMMITTED gives every statement its
    own snapshot anyway, so BEGIN and ROLLBACK would buy nothing)."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    return _READ_ENGINES.get(engine, engine)


def _configure_sqlite_connections(engine: Engine) -> None:
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

    # A connection goes back to the pool after a commit or rollback; one returned without
    # either leaves the writer queue here.
    event.listen(engine.pool, "reset", leave_writer_queue)


def _configure_sqlite_transactions(engine: Engine, queue: WriterQueue | None) -> None:
    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        connection.info[_DEFERRED] = False
        if read_only.get():
            # A read-only request runs each statement in its own snapshot, as READ COMMITTED
            # does on PostgreSQL: no BEGIN, and the closing rollback has nothing to undo.
            return
        # straight to the driver: a statement through SQLAlchemy costs more than BEGIN itself
        execute = connection.connection.dbapi_connection.execute
        if not write_intent.get():
            execute("BEGIN")  # takes the write lock at its first write
            return
        if defer_write_lock.get():
            execute("BEGIN")
            connection.info[_DEFERRED] = True
            connection.info["scim_writer_queue"] = queue
            return
        _queue_and_begin_immediate(queue, execute)

    @event.listens_for(engine, "before_cursor_execute")
    def _lock_at_first_write(connection, _cursor, statement, *_args) -> None:
        if connection.info.get(_DEFERRED) and statement.split(None, 1)[0].upper() not in _READS:
            take_write_lock(connection)

    # A commit leaves the queue once it is done (the session event below); a rollback here.
    event.listen(engine, "rollback", leave_writer_queue)


def _unicode_lower(value):
    return value.lower() if isinstance(value, str) else value


class ReadSession:
    """The session of a read-only request: a plain connection, with a full ORM session only
    for the rare read that wants one (a token not in the cache, say).

    A read runs Core statements on ``connection()``. Checking a connection out through an ORM
    session and returning it (its transaction bookkeeping) cost a GET more than its statement's
    execution; without it, a read pays for the connection alone.
    """

    def __init__(self, engine: Engine, sessions: sessionmaker[Session]):
        self._engine = engine
        self._sessions = sessions
        self._connection: Connection | None = None
        self._session: Session | None = None

    def connection(self) -> Connection:
        if self._connection is None:
            self._connection = self._engine.connect()
        return self._connection

    def get_bind(self, *_args, **_kwargs) -> Engine:
        return self._engine

    def __getattr__(self, name: str):
        """Anything else a Session offers, from a Session on the same connection."""
        if self._session is None:
            self._session = self._sessions(bind=self.connection())
        return getattr(self._session, name)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
        if self._connection is not None:
            self._connection.close()
        self._session = self._connection = None


def make_read_session_factory(engine: Engine):
    """Sessions (``ReadSession``) for requests that only read, on ``read_engine(...)``.

    They run without BEGIN and ROLLBACK, each statement in its own snapshot: on PostgreSQL in
    autocommit, on SQLite without a transaction.
    """
    sessions = make_session_factory(engine)
    return lambda: ReadSession(engine, sessions)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    factory = sessionmaker(engine, expire_on_commit=False, autoflush=False)
    event.listen(factory, "after_commit", leave_writer_queue)
    return factory


def commit_write(session: Session) -> None:
    """Commit a request's write transaction. Whatever the request reads afterwards (the
    response body) runs as a read-only request, so SQLite's write lock is not held while
    rendering."""
    session.commit()
    write_intent.set(False)
    read_only.set(True)


# The database's refusals under names of our own. The HTTP layer answers them (a constraint the
# database enforced is 409 uniqueness, a database it cannot reach or lock is 503 with Retry-After,
# see ``http/errors.py``) but imports nothing from SQLAlchemy: which database library raises them
# is storage's business, so storage names them. These are the SQLAlchemy classes themselves, not
# wrappers: whatever raised the one is caught as the other.
#: a constraint of the database refused the change (a unique index, a foreign key)
DatabaseRefusal = IntegrityError
#: the database could not be reached, was lost mid-request, or stayed locked past the busy timeout
DatabaseUnavailable = OperationalError
