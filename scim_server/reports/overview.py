"""A tenant's overview: the numbers on the console's first page.

(contract; implementation to come)
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Caller:
    kind: str                    # "token" or "client"
    id: str                      # token id or client_id
    description: str
    last_used_at: dt.datetime | None


@dataclass(frozen=True)
class LastRun:
    source: str
    run_id: str
    started_at: dt.datetime
    status: str
    summary: dict


@dataclass(frozen=True)
class Overview:
    users_active: int
    users_inactive: int
    future_starters: int
    leavers_due: int
    org_units: int
    callers: list[Caller]        # each non-revoked long-lived token and OAuth client, last request
    last_runs: list[LastRun]     # the newest run of each source
    errors_24h: int              # failed sync rows + refused/failed runs in the last 24 hours


def overview(session: Session, tenant_id: int, now: dt.datetime) -> Overview:
    raise NotImplementedError
