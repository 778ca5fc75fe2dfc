"""Which store serves which resource type, for one tenant.

Reads (the views) and writes (the write service in ``provisioning``) open their
stores here, so both see a tenant the same way: its id, its settings as
authentication read them, and the schema extensions it has switched off.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from ..scim.errors import not_found
from ..scim.schemas import registry
from .groups import GroupStore
from .resources import ResourceStore
from .users import UserStore

#: resource type name -> its store
STORES: dict[str, type[ResourceStore]] = {"User": UserStore, "Group": GroupStore}
#: endpoint (as in a URL or a Bulk path) -> resource type name
ENDPOINTS = {"Users": "User", "Groups": "Group"}


@dataclass(frozen=True)
class TenantScope:
    """The tenant a request acts for."""

    tenant_id: int
    #: the tenant's settings (None: a store reads them when it needs them)
    settings: dict[str, Any] | None = None
    #: schema extensions the tenant has switched off (``tenant set --no-master-data``)
    disabled_extensions: frozenset[str] = field(default_factory=frozenset)
    #: the source a sync writes for: what it creates belongs to that source
    source_id: int | None = None


def open_store(session: Session, scope: TenantScope, resource_type: str, base_url: str) -> ResourceStore:
    rt = registry().resource_type(resource_type, without=scope.disabled_extensions)
    return STORES[resource_type](session, scope.tenant_id, rt, base_url, scope.settings, scope.source_id)


def find(store: ResourceStore, resource_id: str, *, for_update: bool = False):
    """The resource's row, or 404 (another tenant's id is not found either)."""
    if "\x00" in resource_id:  # no id has one, and PostgreSQL refuses to compare with it
        raise not_found(f"{store.rt.name} not found")
    row = store.get(resource_id, for_update=for_update)
    if row is None:
        raise not_found(f"{store.rt.name} {resource_id} not found")
    return row
