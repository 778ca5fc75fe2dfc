"""The server's Prometheus metrics, and the hooks every layer calls to count (no Flask here).

The HTTP layer (``scim_server.http.metrics``) counts requests and serves ``/metrics``; storage,
the write service and the CLI count what they do through the plain functions below
(``count_audit_events``, ``count_leaver_run``, ``count_rate_limited``), which is why this module
sits beside the layers rather than in one of them: storage may not import the HTTP layer.

Under gunicorn every worker is a process of its own, so the metrics use ``prometheus_client``'s
multi-process mode: ``prepare_multiprocess_dir()`` gives the server a fresh private directory
(``PROMETHEUS_MULTIPROC_DIR``) before the workers fork, each worker writes its values there, the
worker that answers ``/metrics`` adds them all up, and gunicorn's ``child_exit`` hook drops a dead
worker's live gauges. Without that directory (tests, a single process) the values live in memory.

The metrics are made on first use, in the process that uses them (a worker, after the fork),
so that they see the directory; no label ever carries tenant data or a resource id.
"""
from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: request latency buckets, in seconds (a GET is a few milliseconds, a Bulk or sync seconds)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
log = logging.getLogger(__name__)


class _Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "scim_http_requests", "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"], registry=registry)
        self.latency = Histogram(
            "scim_http_request_duration_seconds", "Time to answer an HTTP request, by method and route template",
            ["method", "route"], buckets=LATENCY_BUCKETS, registry=registry)
        self.scim_errors = Counter(
            "scim_errors", "SCIM error responses, by status and scimType (none: an error without one)",
            ["status", "scim_type"], registry=registry)
        self.rate_limited = Counter(
            "scim_rate_limited_requests", "Requests refused by the rate limit (429)", registry=registry)
        self.audit_events = Counter(
            "scim_audit_events_written", "Audit events written", registry=registry)
        self.leaver_runs = Counter(
            "scim_leaver_runs", "Runs of the leaver rule", registry=registry)
        self.leaver_changes = Counter(
            "scim_leaver_users_changed", "Users whose active flag a run of the leaver rule changed",
            registry=registry)
        self.pool_checked_out = Gauge(
            "scim_db_pool_checked_out_connections", "Database connections checked out of the pool now",
            multiprocess_mode="livesum", registry=registry)
        self.pool_size = Gauge(
            "scim_db_pool_size", "Connections the database pool keeps (beyond them it may open overflow ones)",
            multiprocess_mode="livesum", registry=registry)


_instance: _Metrics | None = None
_instance_lock = threading.Lock()


def metrics() -> _Metrics:
    """This process's metrics, made on first use."""
    global _instance
    if _instance is None:
        with _instance_lock:
            if _instance is None:
                _instance = _Metrics()
    return _instance


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def render() -> tuple[bytes, str]:
    """The metrics in Prometheus' text format, and its content type: in multi-process mode the
    sum over every worker of the server (live or dead), else this process's."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    metrics()  # this process's series exist (at zero) even before it counted anything
    if multiprocess():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(metrics().registry), CONTENT_TYPE_LATEST


# ------------------------------------------------------------------ gunicorn's master


def prepare_multiprocess_dir() -> str:
    """Give this server a fresh, private metrics directory; call it in gunicorn's master before
    the workers fork (``serve`` does). The directory is removed when the master exits."""
    path = tempfile.mkdtemp(prefix="scim-metrics-")  # mode 0700
    os.environ[MULTIPROC_ENV] = path
    from prometheus_client import values
    values.ValueClass = values.get_value_class()  # in case prometheus_client was imported before
    global _instance
    _instance = None  # metrics made before now would write elsewhere: make them again
    atexit.register(_remove_dir, path, os.getpid())
    return path


def _remove_dir(path: str, owner: int) -> None:
    # the workers inherit this atexit hook with the fork; only the master removes the directory
    if os.getpid() == owner:
        shutil.rmtree(path, ignore_errors=True)


def child_exit(_server, worker) -> None:
    """gunicorn's ``child_exit`` hook: a dead worker's live gauges (pool use) stop counting."""
    if multiprocess():
        from prometheus_client import multiprocess as prometheus_multiprocess
        prometheus_multiprocess.mark_process_dead(worker.pid)


# ------------------------------------------------------------------ what the layers count


def count_rate_limited() -> None:
    """A request was refused by the rate limit (429)."""
    _safely(lambda: metrics().rate_limited.inc())


def count_audit_events(count: int = 1) -> None:
    """``count`` audit events were written (call it where they are inserted)."""
    if count > 0:
        _safely(lambda: metrics().audit_events.inc(count))


def count_leaver_run(users_changed: int = 0) -> None:
    """The leaver rule ran once and changed ``users_changed`` users' active flag."""
    def count() -> None:
        m = metrics()
        m.leaver_runs.inc()
        if users_changed > 0:
            m.leaver_changes.inc(users_changed)
    _safely(count)


def count_request(method: str, route: str, status: int, seconds: float | None) -> None:
    m = metrics()
    m.requests.labels(method, route, str(status)).inc()
    if seconds is not None:
        m.latency.labels(method, route).observe(seconds)


def count_scim_error(status: int, scim_type: str) -> None:
    metrics().scim_errors.labels(str(status), scim_type).inc()


# ------------------------------------------------------------------ the connection pool

_checked_out: set[int] = set()
_checked_out_lock = threading.Lock()


def watch_pool(engine) -> None:
    """Keep ``scim_db_pool_checked_out_connections`` up to date from the pool's check-out and
    check-in events (every worker's own pool; the gauges add up over live workers)."""
    from sqlalchemy import event

    pool = engine.pool
    if getattr(pool, "_scim_watched", False):
        return
    pool._scim_watched = True
    size = getattr(pool, "size", None)
    if callable(size):
        _safely(lambda: metrics().pool_size.inc(size()))

    def checked_out(_dbapi_connection, record, _proxy) -> None:
        _track(record, True)

    def checked_in(_dbapi_connection, record) -> None:
        _track(record, False)

    def detached(_dbapi_connection, record) -> None:  # leaves the pool for good, never checked in
        _track(record, False)

    event.listen(pool, "checkout", checked_out)
    event.listen(pool, "checkin", checked_in)
    event.listen(pool, "detach", detached)


def _track(record, out: bool) -> None:
    # a set of connection records, not a count: a failed connect is checked in without having
    # been checked out, so counting up and down could drift
    with _checked_out_lock:
        if out:
            _checked_out.add(id(record))
        else:
            _checked_out.discard(id(record))
        _safely(lambda: metrics().pool_checked_out.set(len(_checked_out)))


#: on in a process that serves ``/metrics`` (``count_in_this_process``, from the web app): a
#: command run from cron (a nightly sync, deactivate-leavers) has no one to read its counts,
#: and importing prometheus_client to count them cost such a run 0.2 s
_counting = False


def count_in_this_process() -> None:
    """This process serves ``/metrics``: the storage layer's counts are kept from now on."""
    global _counting
    _counting = True


def _safely(action) -> None:
    """Counting must never fail the work it counts; nothing is counted where no one reads it."""
    if not _counting:
        return
    try:
        action()
    except Exception:  # a metrics failure is logged, not raised
        log.exception("could not update a metric")
