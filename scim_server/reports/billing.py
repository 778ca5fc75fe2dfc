"""Billing: active users per effective EAN on a date, and per org unit under each EAN.

plan2learn invoices a customer per EAN (a public Danish institution's electronic invoice
address): each EAN is billed for the users it pays for on the billing date.

Who counts on a date D (the whole day, in UTC):

* the user is not deactivated: ``users.active`` is not false (NULL, "unassigned by a client",
  is not a deactivation; ``active`` is what plan2learn lets sign in, so it is what is billed);
* and either they have an *employment* in effect on D: a membership of an org unit
  (``Group.is_org_unit``) with no start date or one before the end of D, and no end date or one
  at or after the start of D (an employment that starts or ends during D counts for D);
* or they have no employment at all, ended or future, but an own ``ean``: someone paid for
  directly (a consultant, a board member). A user with employments none of which is in effect
  on D is not billed on D, own ean or not: the dates say they do not work there then.

Users with neither an employment nor an own ean (external users, guest accounts) are not billed
and appear on no line.

Which EAN: the user's ``effectiveEan``, from its one definition (``storage.derived.effective_ean``):
the own ean, else the effective ean of the unit of the chosen employment (primary first). It is
today's value: the report does not reconstruct which EAN a unit had on a past date. Under each
EAN, users are grouped by the unit that EAN was taken from (``derived.effective_ean_unit``), so
a line adds up to its units; users billed on their own ean form the unit line without a unit.

The users who count but have no effective EAN (their chosen unit and its ancestors have none)
are the last line, ``ean`` None: active, but not invoiceable until someone gives the unit an
EAN. Its unit lines name the units that lack one.

Everything is counted in the database (one GROUP BY over the tenant's users): a tenant of
100,000 users costs one statement and a few hundred result rows, never the users themselves. The
statement reads the users once, each joined to the unit of its chosen employment (kept on the
user, ``users.chosen_unit_id``), so its cost grows with the tenant, not with the tenant times
an index search.

The renderings (``billing_json``, ``billing_rows``, ``billing_csv``, ``billing_xlsx``) live here
too, so the admin API and the console's downloads are the same file.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Integer, and_, cast, exists, func, or_, select, union_all
from sqlalchemy.orm import Session, aliased

from ..storage.derived import effective_ean, effective_ean_unit
from ..storage.models import Group, Membership, User


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


def _day(on: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The start of ``on`` and of the next day, in UTC (employment dates are stored in UTC)."""
    start = dt.datetime(on.year, on.month, on.day, tzinfo=dt.UTC)
    if on == dt.date.max:  # no next day to compare with: the end of time
        return start, dt.datetime.max.replace(tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def _in_effect_on(job, start: dt.datetime, next_day: dt.datetime):
    """The employment ``job`` (an alias of Membership) is in effect on the day from ``start`` to
    ``next_day`` (see the module's docstring)."""
    return and_(or_(job.start_date.is_(None), job.start_date < next_day),
                or_(job.end_date.is_(None), job.end_date >= start))


def _idle(tenant_id: int, start: dt.datetime, next_day: dt.datetime):
    """The ids of the users with employments none of which is in effect on the day: found among
    the few with an employment not in effect, each then checked for one in effect by its own
    employments, rather than every user's employments looked at. Not in effect is "starts after
    the day" or "ended before it", two range searches of the (tenant, start date) and (tenant,
    end date) indexes (migration 0010); one OR of both would read every employment instead."""
    other, other_unit = aliased(Membership), aliased(Group)

    def employments(where):
        job, unit = aliased(Membership), aliased(Group)
        return (select(job.user_id).join(unit, and_(unit.id == job.group_id, unit.is_org_unit))
                .where(job.tenant_id == tenant_id, job.user_id.is_not(None), where(job)))

    candidates = union_all(employments(lambda job: job.start_date >= next_day),
                           employments(lambda job: job.end_date < start)).subquery("not_in_effect")
    working = exists().where(other.user_id == candidates.c.user_id, other_unit.id == other.group_id,
                             other_unit.is_org_unit, _in_effect_on(other, start, next_day))
    return select(candidates.c.user_id).where(~working)


def billing(session: Session, tenant_id: int, on: dt.date) -> BillingReport:
    """The users billed on ``on``, per effective EAN and, under each, per unit.

    One statement, in one pass over an index of the tenant's users: they are counted per
    chosen unit and own ean (the employed users without an employment in effect on the day,
    ``_idle``, left out), each such pair's (EAN, unit) comes from ``derived.effective_ean`` (with
    the chosen unit joined) and ``effective_ean_unit``; the pairs are summed per (EAN, unit),
    and only the counted lines are joined to their unit for its code and name. Lines come by EAN (the line without one last),
    units within a line by users (most first), then unitCode (the own-EAN line, without a unit,
    after the units with as many users)."""
    start, next_day = _day(on)
    employed = User.chosen_unit_id.is_not(None)
    # first the billed users counted per (chosen unit, own ean): read from the index that holds
    # those columns (migration 0010), not from the table's rows, which carry whole documents
    per_pair = (select(User.chosen_unit_id, User.ean, func.count().label("users"))
                .where(User.tenant_id == tenant_id, User.active.isnot(False),
                       or_(and_(employed, User.id.not_in(_idle(tenant_id, start, next_day))),
                           and_(~employed, User.ean.isnot(None))))
                .group_by(User.chosen_unit_id, User.ean).subquery("per_pair"))
    # then each pair's effectiveEan and unit by their one definition, a few thousand joins
    unit = aliased(Group)
    ean, unit_id = effective_ean(per_pair.c, unit).label("ean"), effective_ean_unit(per_pair.c).label("unit_id")
    counted = (select(ean, unit_id, cast(func.sum(per_pair.c.users), Integer).label("users"))  # not NUMERIC
               .select_from(per_pair).outerjoin(unit, unit.id == per_pair.c.chosen_unit_id)
               .group_by(ean, unit_id).subquery("counted"))
    rows = session.execute(
        select(counted.c.ean, counted.c.unit_id, Group.unit_code, Group.display_name, counted.c.users)
        .select_from(counted).outerjoin(Group, Group.id == counted.c.unit_id)
        # explicit NULL placement: SQLite sorts NULLs first, PostgreSQL last
        .order_by(counted.c.ean.is_(None), counted.c.ean, counted.c.users.desc(),
                  Group.unit_code.asc().nulls_last(), counted.c.unit_id.asc().nulls_last())).all()
    lines: list[EanLine] = []
    for ean, unit_id, unit_code, display_name, count in rows:
        if not lines or lines[-1].ean != ean:
            lines.append(EanLine(ean, 0, []))
        lines[-1].units.append(UnitLine(unit_id, unit_code, display_name, count))
    lines = [EanLine(line.ean, sum(u.users for u in line.units), line.units) for line in lines]
    return BillingReport(on, sum(line.users for line in lines), lines)


# ------------------------------------------------------------------ renderings


def billing_json(report: BillingReport) -> dict[str, Any]:
    """The report as the admin API answers it: ``{"date", "totalUsers", "eans": [{"ean", "users",
    "units": [{"id", "unitCode", "displayName", "users"}]}]}`` (``ean`` and a unit's fields are
    null where there is none)."""
    return {"date": report.date.isoformat(), "totalUsers": report.total_users,
            "eans": [{"ean": line.ean, "users": line.users,
                      "units": [{"id": u.unit_id, "unitCode": u.unit_code, "displayName": u.display_name,
                                 "users": u.users} for u in line.units]}
                     for line in report.lines]}


#: the columns of the flat renderings (CSV, XLSX): one row per (EAN, unit)
BILLING_COLUMNS = ("ean", "unitCode", "unitName", "users")


def billing_rows(report: BillingReport) -> list[tuple[str, str, str, int]]:
    """One row per (EAN, unit), as ``BILLING_COLUMNS``; a missing EAN or unit is an empty string,
    so a spreadsheet's sum of ``users`` is the report's total."""
    return [(line.ean or "", u.unit_code or "", u.display_name or "", u.users)
            for line in report.lines for u in line.units]


def _as_text(value: str) -> str:
    """A cell a spreadsheet will not run: a unit's name comes from an IdP or a file, and one that
    starts like a formula (``=HYPERLINK(...)``) would be evaluated when the CSV is opened. A
    leading apostrophe is the usual neutraliser (OWASP, "CSV injection")."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def billing_csv(report: BillingReport) -> bytes:
    """The rows as CSV (RFC 4180: comma, CRLF, quotes where needed), UTF-8, header first."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(BILLING_COLUMNS)
    writer.writerows((ean, _as_text(code), _as_text(name), users) for ean, code, name, users in billing_rows(report))
    return out.getvalue().encode("utf-8")


def billing_xlsx(report: BillingReport) -> bytes:
    """The rows as an Excel workbook (one sheet, header first, ``users`` as numbers)."""
    from openpyxl import Workbook  # only a download needs it

    book = Workbook()
    sheet = book.active
    sheet.title = f"Billing {report.date.isoformat()}"
    sheet.append(BILLING_COLUMNS)
    for row in billing_rows(report):
        sheet.append(row)
        for cell in sheet[sheet.max_row][:3]:
            cell.data_type = "s"  # text, never a formula, whatever it starts with
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


#: the downloads, by the API's ``format`` and the console's link: (rendering, media type)
DOWNLOADS = {
    "csv": (billing_csv, "text/csv; charset=utf-8"),
    "xlsx": (billing_xlsx, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
}
