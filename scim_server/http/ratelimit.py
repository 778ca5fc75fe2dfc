"""Per-tenant rate limits (and per token within a tenant), counted across all workers.

Every authenticated request takes one token from two token buckets: its tenant's (all the
tenant's tokens together) and its caller's (one long-lived token, OAuth client or JWT subject:
the token's ``actor``), which may use ``token_percent`` of the tenant's rate and burst, so one
runaway script cannot lock the tenant's IdP out. A request finding either bucket empty takes
nothing and is answered 429 with ``Retry-After``; the check runs in ``require_token``, right
after the token is known (from the token cache, usually) and before the request touches the
database.

The limits are the ``SCIM_RATE_LIMIT_*`` settings, overridden per tenant by its setting
``rate_limit``: ``{"per_second": N, "burst": M, "token_percent": P}`` (each optional), or
``"off"`` / ``0`` for no limit (``scim-server tenant rate-limit``).

The buckets live in a fixed-size table (hashed keys, a short linear probe, the least recently
used slot of the probe evicted when all are taken). gunicorn's workers are separate processes, so
``serve`` creates the table as a file in a temporary folder before forking
(``prepare_shared_table``) and names it in ``SCIM_RATE_LIMIT_FILE``; each worker maps it
(``mmap``) and updates it under an exclusive ``flock`` held for a few struct reads and writes.
Without that variable (the Flask test client, ``flask run``) the table is an in-process buffer.
"""
from __future__ import annotations

import atexit
import fcntl
import hashlib
import logging
import math
import mmap
import os
import shutil
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

from flask import current_app, g

from ..scim.errors import ScimError

ENV_FILE = "SCIM_RATE_LIMIT_FILE"
EXTENSION = "scim_rate_limiter"
SLOTS = 8192
PROBES = 8
MAGIC = b"SCIMRL01"
_HEADER = struct.Struct("<8sI4x")  # magic, number of slots
_SLOT = struct.Struct("<Qdd")  # key hash (0: empty), tokens left, when they were counted (monotonic s)
TABLE_BYTES = _HEADER.size + SLOTS * _SLOT.size
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    per_second: float
    burst: float


@dataclass(frozen=True)
class Limits:
    tenant: Limit
    token: Limit | None  # None: a caller may use all of the tenant's rate


def _number(value, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def limits_for(settings, tenant_settings: dict | None) -> Limits | None:
    """The tenant's limits: the server's defaults, overridden by the tenant's ``rate_limit``
    setting; None when the tenant has no limit."""
    raw = (tenant_settings or {}).get("rate_limit")
    per_second = float(settings.rate_limit_per_second)
    burst = float(settings.rate_limit_burst)
    percent = float(settings.rate_limit_token_percent)
    if raw == "off" or raw is False or raw == 0:
        return None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        raw = {"per_second": raw}
    if isinstance(raw, dict):
        if raw.get("per_second") is not None:
            per_second = _number(raw["per_second"], per_second)
            burst = 2 * per_second  # unless the tenant names its own burst
        burst = _number(raw.get("burst"), burst)
        percent = _number(raw.get("token_percent"), percent)
    if per_second <= 0:
        return None
    tenant = Limit(per_second, max(1.0, burst))
    if not 0 < percent < 100:
        return Limits(tenant, None)
    share = percent / 100
    return Limits(tenant, Limit(per_second * share, max(1.0, tenant.burst * share)))


def _key(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") or 1


class BucketTable:
    """Token buckets in a buffer: an mmap shared by processes (with ``lock_fd`` to flock) or a
    bytearray of this process."""

    def __init__(self, buffer, lock_fd: int | None = None):
        self.buffer = buffer
        self.lock_fd = lock_fd
        self.slots = (len(buffer) - _HEADER.size) // _SLOT.size
        self._lock = threading.Lock()  # flock does not exclude threads sharing the descriptor

    @contextmanager
    def _locked(self):
        with self._lock:
            if self.lock_fd is None:
                yield
                return
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self.lock_fd, fcntl.LOCK_UN)

    def _slot(self, key: int) -> int:
        """The offset of the key's slot: where it is, else the first empty one of its probe,
        else the one of its probe counted longest ago (slots are never emptied, so a key is
        always found before an empty slot)."""
        start = key % self.slots
        victim, oldest = 0, math.inf
        for i in range(PROBES):
            offset = _HEADER.size + ((start + i) % self.slots) * _SLOT.size
            stored, _tokens, stamp = _SLOT.unpack_from(self.buffer, offset)
            if stored == key or stored == 0:
                return offset
            if stamp < oldest:
                victim, oldest = offset, stamp
        return victim

    def take(self, buckets: list[tuple[int, Limit]], now: float) -> float:
        """Take one token from each bucket, or from none: 0.0 when taken, else the seconds
        until every bucket holds one again."""
        with self._locked():
            found = []
            wait = 0.0
            for key, limit in buckets:
                offset = self._slot(key)
                stored, tokens, stamp = _SLOT.unpack_from(self.buffer, offset)
                if stored != key:  # new (or evicted): a full bucket
                    tokens = limit.burst
                else:
                    tokens = min(limit.burst, tokens + max(0.0, now - stamp) * limit.per_second)
                if tokens < 1:
                    wait = max(wait, (1 - tokens) / limit.per_second)
                _SLOT.pack_into(self.buffer, offset, key, tokens, now)  # claimed before the next lookup
                found.append((offset, key, tokens))
            if wait == 0.0:
                for offset, key, tokens in found:
                    _SLOT.pack_into(self.buffer, offset, key, tokens - 1, now)
            return wait


def local_table(slots: int = SLOTS) -> BucketTable:
    buffer = bytearray(_HEADER.size + slots * _SLOT.size)
    _HEADER.pack_into(buffer, 0, MAGIC, slots)
    return BucketTable(buffer)


def shared_table(path: str) -> BucketTable:
    """The table in the file at ``path``, created (zeroed, under the lock) when missing or empty."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.fstat(fd).st_size == 0:
                os.ftruncate(fd, TABLE_BYTES)
                os.pwrite(fd, _HEADER.pack(MAGIC, SLOTS), 0)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        size = os.fstat(fd).st_size
        buffer = mmap.mmap(fd, size)
        magic, slots = _HEADER.unpack_from(buffer, 0)
        if magic != MAGIC or size != _HEADER.size + slots * _SLOT.size:
            buffer.close()
            raise ValueError(f"{path} is not a rate-limit table")
    except BaseException:
        os.close(fd)
        raise
    return BucketTable(buffer, fd)


def prepare_shared_table() -> dict[str, str]:
    """For ``serve``, before gunicorn forks: a fresh table file in a temporary folder (removed
    when this process exits); returns the environment to set so that the workers find it.
    Returns nothing when ``SCIM_RATE_LIMIT_FILE`` is set already (the operator's, or a bench's)."""
    if os.environ.get(ENV_FILE):
        return {}
    folder = tempfile.mkdtemp(prefix="scim-ratelimit-")
    path = os.path.join(folder, "buckets")
    table = shared_table(path)
    table.buffer.close()
    os.close(table.lock_fd)
    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:  # not in a forked worker that exits
            shutil.rmtree(folder, ignore_errors=True)

    atexit.register(remove)
    return {ENV_FILE: path}


class RateLimiter:
    def __init__(self, table: BucketTable, clock: Callable[[], float] = time.monotonic):
        self.table = table
        self.clock = clock

    def acquire(self, tenant_id: int, caller: str, limits: Limits) -> float:
        """0.0 when the request may go on, else the seconds to wait."""
        buckets = [(_key(f"tenant:{tenant_id}"), limits.tenant)]
        if limits.token is not None:
            buckets.append((_key(f"caller:{tenant_id}:{caller}"), limits.token))
        return self.table.take(buckets, self.clock())


_create_lock = threading.Lock()


def limiter() -> RateLimiter:
    """The app's limiter, made on first use (in the worker, after the fork)."""
    found = current_app.extensions.get(EXTENSION)
    if found is not None:
        return found
    with _create_lock:
        found = current_app.extensions.get(EXTENSION)
        if found is None:
            path = os.environ.get(ENV_FILE)
            table = None
            if path:
                try:
                    table = shared_table(path)
                except (OSError, ValueError) as exc:
                    log.warning("rate limits counted per worker: cannot use %s (%s)", path, exc)
            found = current_app.extensions[EXTENSION] = RateLimiter(table or local_table())
        return found


def check(token) -> None:
    """Count the request against its tenant's and caller's limits (once per request); over
    either, a 429 SCIM error with ``Retry-After`` in whole seconds."""
    if g.get("rate_limit_checked"):
        return
    g.rate_limit_checked = True
    limits = limits_for(current_app.config["SCIM"], token.tenant_settings)
    if limits is None:
        return
    wait = limiter().acquire(token.tenant_id, token.actor or str(token.token_id), limits)
    if wait > 0:
        _count_metric()
        seconds = max(1, math.ceil(wait))
        share = f", one caller {limits.token.per_second:g}" if limits.token else ""
        raise ScimError(429, f"Too many requests: this tenant may send {limits.tenant.per_second:g} requests "
                        f"per second{share}; retry after {seconds} s", None, {"Retry-After": str(seconds)})


_metric: list = []


def _count_metric() -> None:
    """``scim_server.http.metrics.count_rate_limited()``, when that module exists."""
    if not _metric:
        try:
            from .metrics import count_rate_limited
        except ImportError:
            count_rate_limited = None
        _metric.append(count_rate_limited)
    if _metric[0] is not None:
        _metric[0]()
