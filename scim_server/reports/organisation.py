"""The org tree and the manager tree as the console shows them: one level at a time, with
headcounts, so a page never walks more of the tree than it shows.

Headcount: distinct *active* users (``active`` not false) with an employment in effect now
(started, or no start date; not ended, or no end date) in the unit ("own") or in the unit or
any unit below it ("subtree").

(contract; implementation to come)
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class UnitNode:
    id: str
    display_name: str
    unit_code: str | None
    unit_type: str | None
    ean: str | None             # the unit's own
    effective_ean: str | None   # its own or the nearest ancestor's
    parent_id: str | None
    children: int               # number of child units
    headcount: int              # own
    subtree_headcount: int      # the unit and everything below it


@dataclass(frozen=True)
class Person:
    id: str
    user_name: str
    display_name: str | None
    active: bool | None
    title: str | None           # of the employment in the unit, if any
    unit_id: str | None
    unit_name: str | None


@dataclass(frozen=True)
class ManagerNode:
    id: str
    user_name: str
    display_name: str | None
    active: bool | None
    direct_reports: int
    total_reports: int          # everyone below them in the manager tree


def units(session: Session, tenant_id: int, parent_id: str | None, now: dt.datetime) -> list[UnitNode]:
    """The child units of ``parent_id`` (the roots when None), by displayName."""
    raise NotImplementedError


def unit(session: Session, tenant_id: int, unit_id: str, now: dt.datetime) -> UnitNode | None:
    raise NotImplementedError


def ancestors(session: Session, tenant_id: int, unit_id: str) -> list[tuple[str, str]]:
    """(id, displayName) from the root down to the unit's parent: the breadcrumb."""
    raise NotImplementedError


def people_in(session: Session, tenant_id: int, unit_id: str, now: dt.datetime, *,
              offset: int = 0, limit: int = 50) -> tuple[int, list[Person]]:
    """People employed (now) in the unit or below it, by displayName then id: (total, page)."""
    raise NotImplementedError


def managers(session: Session, tenant_id: int, manager_id: str | None) -> list[ManagerNode]:
    """The direct reports of ``manager_id`` who are managers themselves or not (all of them),
    or, when None, the top of the tree: users who have reports and no manager."""
    raise NotImplementedError
