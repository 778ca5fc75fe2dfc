"""Data quality: the checks a customer's admin works through, each a count and the list behind it.

(contract; implementation to come)
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

#: the checks, in the order the console and the API show them
CHECKS = ("without_org_unit", "without_manager", "without_effective_ean", "duplicate_emails",
          "units_without_ean", "future_starters", "leavers_due")


@dataclass(frozen=True)
class Finding:
    """One row of a check's list: a user or an org unit."""
    resource_type: str       # "User" or "Group"
    id: str
    name: str                # userName (users) or displayName (units)
    display_name: str | None
    detail: str | None       # e.g. the duplicated e-mail, the unitCode, the start or end date (ISO)


def counts(session: Session, tenant_id: int, now: dt.datetime) -> dict[str, int]:
    """Every check's count, keyed as ``CHECKS``."""
    raise NotImplementedError


def findings(session: Session, tenant_id: int, check: str, now: dt.datetime, *,
             offset: int = 0, limit: int = 50) -> list[Finding]:
    """One page of a check's list, in a stable order."""
    raise NotImplementedError
