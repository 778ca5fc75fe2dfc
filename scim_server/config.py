"""Server settings, read once from the environment.

Every knob an operator may turn lives here, with its environment variable, so
that the README, the Dockerfile and the CLI all describe the same thing.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field


class ConfigError(ValueError):
    """A setting in the environment that cannot be used (the message names it and says why)."""


#: the largest number a setting may hold unless it says otherwise (PostgreSQL's integer)
_MAX_INT = 2**31 - 1


def _env_int(name: str, default: int, minimum: int = 0, maximum: int = _MAX_INT) -> int:
    """An integer setting from the environment, ``default`` when unset or empty; anything that
    is not a whole number from ``minimum`` to ``maximum`` is a ``ConfigError``."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be from {minimum} to {maximum}, not {value}")
    return value


@dataclass(frozen=True)
class Settings:
    #: SQLAlchemy URL. SQLite (the default) lives in the working folder.
    database_url: str = "sqlite:///scim.db"
    #: Where the SCIM API is mounted.
    base_path: str = "/scim/v2"
    #: Absolute public URL of ``base_path`` (e.g. ``https://scim.example.dk/scim/v2``).
    #: When unset, locations are built from the request, honouring X-Forwarded-Proto/Host.
    public_base_url: str | None = None
    #: Largest page a list or search answers; advertised in /ServiceProviderConfig.
    max_page_size: int = 1000
    #: Page size when the client sends no ``count``.
    default_page_size: int = 100
    #: Seconds a cursor of cursor-based paging (RFC 9865) stays valid; advertised as ``cursorTimeout``.
    cursor_timeout: int = 3600
    #: Largest request body accepted, in bytes (413 beyond it).
    max_body_bytes: int = 10 * 1024 * 1024
    #: Largest number of operations in one PATCH request.
    max_patch_operations: int = 1000
    #: Largest number of operations in one Bulk request; advertised in /ServiceProviderConfig.
    bulk_max_operations: int = 1000
    #: Largest Bulk request body, in bytes; advertised in /ServiceProviderConfig.
    bulk_max_payload_bytes: int = 4 * 1024 * 1024
    #: Largest upload to the sync endpoint, in bytes (a payroll file of 100,000 people is ~20 MB).
    sync_max_bytes: int = 200 * 1024 * 1024
    #: A sync upload larger than this runs in the background (202 and the run's URL).
    sync_inline_bytes: int = 1024 * 1024
    #: Seconds a verified bearer token is cached in a worker before being checked again.
    token_cache_seconds: int = 5
    #: Lifetime of OAuth access tokens issued by /oauth/token.
    access_token_seconds: int = 3600
    #: Trust X-Forwarded-Proto/Host (set false when not behind a proxy you control).
    trust_forwarded_headers: bool = True
    #: Requests per second one tenant may send, all its tokens together (0: no limit; over it: 429).
    #: A tenant's own ``rate_limit`` setting overrides these three (``scim-server tenant rate-limit``).
    rate_limit_per_second: int = field(default_factory=lambda: _env_int("SCIM_RATE_LIMIT_PER_SECOND", 200))
    #: Requests a tenant may send at once beyond that rate (the size of its token bucket).
    rate_limit_burst: int = field(default_factory=lambda: _env_int("SCIM_RATE_LIMIT_BURST", 400))
    #: The share of the tenant's rate and burst one token, OAuth client or JWT subject may use, in percent.
    rate_limit_token_percent: int = field(default_factory=lambda: _env_int("SCIM_RATE_LIMIT_TOKEN_PERCENT", 50, 1, 100))
    #: Bearer token that ``GET /metrics`` requires when set; when unset, /metrics answers loopback clients only.
    metrics_token: str | None = field(default_factory=lambda: os.environ.get("SCIM_METRICS_TOKEN") or None)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        values = dict(
            database_url=os.environ.get("SCIM_DATABASE_URL") or cls.database_url,
            base_path=(os.environ.get("SCIM_BASE_PATH") or cls.base_path).rstrip("/") or "",
            public_base_url=(os.environ.get("SCIM_PUBLIC_BASE_URL") or "").rstrip("/") or None,
            max_page_size=_env_int("SCIM_MAX_PAGE_SIZE", cls.max_page_size, 1),
            default_page_size=_env_int("SCIM_DEFAULT_PAGE_SIZE", cls.default_page_size, 1),
            cursor_timeout=_env_int("SCIM_CURSOR_TIMEOUT", cls.cursor_timeout, 1),
            max_body_bytes=_env_int("SCIM_MAX_BODY_BYTES", cls.max_body_bytes, 1),
            max_patch_operations=_env_int("SCIM_MAX_PATCH_OPERATIONS", cls.max_patch_operations, 1),
            bulk_max_operations=_env_int("SCIM_BULK_MAX_OPERATIONS", cls.bulk_max_operations, 1),
            bulk_max_payload_bytes=_env_int("SCIM_BULK_MAX_PAYLOAD_BYTES", cls.bulk_max_payload_bytes, 1),
            sync_max_bytes=_env_int("SCIM_SYNC_MAX_BYTES", cls.sync_max_bytes, 1, 2**40),
            sync_inline_bytes=_env_int("SCIM_SYNC_INLINE_BYTES", cls.sync_inline_bytes, 0, 2**40),
            token_cache_seconds=_env_int("SCIM_TOKEN_CACHE_SECONDS", cls.token_cache_seconds),
            access_token_seconds=_env_int("SCIM_ACCESS_TOKEN_SECONDS", cls.access_token_seconds, 1),
            trust_forwarded_headers=os.environ.get("SCIM_TRUST_FORWARDED_HEADERS", "1") not in ("0", "false"),
        )
        values.update(overrides)
        return cls(**values)
