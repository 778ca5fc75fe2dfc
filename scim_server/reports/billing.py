"""Billing: active users per effective EAN on a date, and per org unit under each EAN.

(contract; implementation to come)
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class UnitLine:
    unit_id: str | None      # None: users billed on their own EAN (no unit)
    unit_code: str | None
    display_name: str | None
    users: int


@dataclass(frozen=True)
class EanLine:
    ean: str | None          # None: active users without an effective EAN (cannot be invoiced)
    users: int
    units: list[UnitLine] = field(default_factory=list)


@dataclass(frozen=True)
class BillingReport:
    date: dt.date
    total_users: int
    lines: list[EanLine]     # by EAN ascending, the line without an EAN last


def billing(session: Session, tenant_id: int, on: dt.date) -> BillingReport:
    raise NotImplementedError
