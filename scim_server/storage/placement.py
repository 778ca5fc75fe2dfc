"""Placing users in the org tree from a standard attribute, for IdPs that send no tree.

Entra ID provisions ``department`` (or costCenter, division, organization) but no
plan2learn employments. A tenant setting (``org_unit_attribute``, changed with
``scim-server tenant set``) names the enterprise attribute; the user is then
employed in the org unit whose unitCode or displayName equals its value
(case-insensitively). Such employments are marked ``source = "mapped"`` and
follow the attribute: a new department moves the user, and an empty or removed one
ends the placement. A value that matches no org unit (a typo, a unit not created yet)
keeps the placement as it was and logs a warning naming the user and the value.
Employments written by clients are never touched.
"""
from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import delete, func, insert, or_, select
from sqlalchemy.orm import Session

from ..scim.schemas import ENTERPRISE_USER
from .db import take_write_lock
from .models import Group, Membership, Tenant, User, utcnow

MAPPED = "mapped"
ATTRIBUTES = ("department", "costCenter", "division", "organization")
log = logging.getLogger(__name__)


def tenant_attribute(session: Session, tenant_id: int, settings: dict[str, Any] | None = None) -> str | None:
    if settings is None:
        tenant = session.get(Tenant, tenant_id)
        settings = (tenant.settings or {}) if tenant else {}
    name = settings.get("org_unit_attribute")
    return name if name in ATTRIBUTES else None


def place(session: Session, tenant_id: int, user: User, doc: dict[str, Any],
          settings: dict[str, Any] | None = None) -> bool:
    """Employ the user where the mapped attribute says; True when a membership row changed.
    ``settings``: the tenant's settings when the caller has them (else they are read)."""
    attribute = tenant_attribute(session, tenant_id, settings)
    if attribute is None:
        return False
    take_write_lock(session.connection())  # what is read below decides what is written
    value = (doc.get(ENTERPRISE_USER) or {}).get(attribute)
    unit_id = None
    if isinstance(value, str) and value.strip():
        wanted = func.lower(value.strip())  # the database's folding on both sides, as filters do
        unit_id = session.scalar(
            select(Group.id).where(Group.tenant_id == tenant_id, Group.is_org_unit,
                                   or_(func.lower(Group.unit_code) == wanted,
                                       func.lower(Group.display_name) == wanted))
            .order_by((func.lower(Group.unit_code) == wanted).desc(), Group.created).limit(1))
        if unit_id is None:
            log.warning("%s %r of user %s (%s) matches no org unit of tenant %s: the user's placement is "
                        "kept as it was", attribute, value, user.id, user.user_name, tenant_id)
            return False
    current = session.execute(select(Membership.id, Membership.group_id).where(
        Membership.user_id == user.id, Membership.source == MAPPED)).all()
    if [g for _, g in current] == ([unit_id] if unit_id else []):
        return False
    if current:
        session.execute(delete(Membership).where(Membership.id.in_([i for i, _ in current]))
                        .execution_options(synchronize_session=False))
    if unit_id is None:
        return True
    already = session.scalar(select(Membership.id).where(Membership.user_id == user.id,
                                                         Membership.group_id == unit_id))
    if already is not None:
        return bool(current)  # the client already employs the user there
    has_primary = session.scalar(select(Membership.id).where(Membership.user_id == user.id,
                                                             Membership.is_primary).limit(1))
    session.execute(insert(Membership).values(tenant_id=tenant_id, group_id=unit_id, user_id=user.id,
                                              is_primary=has_primary is None, source=MAPPED, created=utcnow()))
    return True
