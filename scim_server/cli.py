"""The ``scim-server`` command: serve, migrate, and manage tenants and tokens.

Commands that print a credential print it alone on stdout, so a script can
capture it: ``TOKEN=$(scim-server token create --tenant acme)``.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import sys

import click

from .config import Settings
from .storage import audit, clients
from .storage import tenants as tenant_store
from .storage.db import make_engine, make_session_factory
from .storage.migrate import upgrade
from .sync.commands import source_group, sync_command, sync_runs_command
from .sync.engine import parse_limit
from .sync.mapping import SyncRefused


def _sessions(settings: Settings):
    return make_session_factory(make_engine(settings.database_url))


def _database():
    """Sessions on the configured database, migrated first (every command may be the first run)."""
    settings = Settings.from_env()
    upgrade(settings.database_url)
    return _sessions(settings)


@click.group()
def main() -> None:
    """plan2learn SCIM 2.0 provisioning server."""


@main.command()
@click.option("--host", default=lambda: os.environ.get("SCIM_HOST", "127.0.0.1"), show_default="127.0.0.1")
@click.option("--port", default=lambda: int(os.environ.get("SCIM_PORT", "8080")), type=int, show_default="8080")
@click.option("--workers", default=lambda: int(os.environ.get("SCIM_WORKERS", "0")), type=int,
              help="gunicorn worker processes (default: 2 x CPU cores, at most 8)")
@click.option("--threads", default=lambda: int(os.environ.get("SCIM_THREADS", "4")), type=int,
              show_default="4", help="threads per worker")
@click.option("--demo", is_flag=True, help="create a 'demo' tenant if missing and print a fresh token for it")
def serve(host: str, port: int, workers: int, threads: int, demo: bool) -> None:
    """Migrate the database, then serve the API with gunicorn."""
    settings = Settings.from_env()
    upgrade(settings.database_url)
    if demo:
        token = _demo_tenant(settings)
        public = settings.public_base_url or f"http://{host}:{port}{settings.base_path}"
        click.echo(f"SCIM base URL: {public}", err=True)
        click.echo(f"Bearer token:  {token}", err=True)
        click.echo(f"Try: curl -H 'Authorization: Bearer {token}' {public}/Users", err=True)
    from .serving import run_gunicorn
    run_gunicorn(host, port, workers or min(8, 2 * (os.cpu_count() or 1)), threads)


def _demo_tenant(settings: Settings) -> str:
    sessions = _sessions(settings)
    with sessions.begin() as session:
        try:
            tenant = tenant_store.get_tenant(session, "demo")
        except tenant_store.TenantError:
            tenant = tenant_store.create_tenant(session, "demo")
            _load_demo(session, tenant.id)
        return tenant_store.create_token(session, tenant, description="demo (scim-server serve --demo)")


def _load_demo(session, tenant_id: int, employees: int = 3000, externals: int = 300, seed: int = 2026) -> None:
    from . import demo
    summary = demo.load(session, tenant_id, employees=employees, externals=externals, seed=seed)
    click.echo(f"demo data: {summary.units} org units, {summary.employees} employees "
               f"({summary.leavers} leavers, {summary.future_starters} future starters), "
               f"{summary.externals} external users", err=True)


@main.command("demo")
@click.option("--tenant", "tenant_name", default="demo", show_default=True)
@click.option("--employees", default=3000, show_default=True)
@click.option("--externals", default=300, show_default=True)
@click.option("--seed", default=2026, show_default=True)
def demo_command(tenant_name: str, employees: int, externals: int, seed: int) -> None:
    """Create a tenant with a realistic Danish municipality (Solbjerg Kommune) and print a token for it."""
    sessions = _database()
    with sessions.begin() as session:
        try:
            tenant = tenant_store.create_tenant(session, tenant_name)
        except tenant_store.TenantError as exc:
            raise click.ClickException(f"{exc}: pick another --tenant") from exc
        _load_demo(session, tenant.id, employees, externals, seed)
        sys.stdout.write(tenant_store.create_token(session, tenant, description="demo") + "\n")


@main.command("deactivate-leavers")
@click.option("--tenant", "tenant_name", default=None, help="only this tenant (default: all)")
@click.option("--dry-run", is_flag=True, help="print what would change, change nothing")
def deactivate_leavers(tenant_name: str | None, dry_run: bool) -> None:
    """Make users whose employments have all ended (or not yet started) inactive, and starters active.

    Idempotent: safe to run from cron every few minutes. Prints one line per change.
    """
    from .storage import leavers
    sessions = _database()
    audit.current.set(audit.Actor("system:deactivate-leavers"))
    with sessions.begin() as session:
        tenant_id = tenant_store.get_tenant(session, tenant_name).id if tenant_name else None
        changes = leavers.evaluate(session, tenant_id=tenant_id, dry_run=dry_run)
        for change in changes:
            action = {True: "activated", False: "deactivated", None: "unchanged"}[change.active]
            click.echo(f"{change.user_name}\t{change.user_id}\temployment {change.state}\t{action}")
        if dry_run:
            session.rollback()
    click.echo(f"{len(changes)} user(s) {'would change' if dry_run else 'changed'}", err=True)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations (also done by `serve`)."""
    upgrade(Settings.from_env().database_url)
    click.echo("database is up to date", err=True)


@main.group()
def tenant() -> None:
    """Tenants (one per plan2learn customer)."""


@tenant.command("create")
@click.argument("name")
def tenant_create(name: str) -> None:
    sessions = _database()
    try:
        with sessions.begin() as session:
            created = tenant_store.create_tenant(session, name)
            click.echo(f"created tenant {created.name!r}", err=True)
    except tenant_store.TenantError as exc:
        raise click.ClickException(str(exc)) from exc


@tenant.command("set")
@click.argument("name")
@click.option("--org-unit-attribute", type=click.Choice(["department", "costCenter", "division",
                                                         "organization", "none"]),
              help="enterprise attribute whose value names the user's org unit (unitCode or displayName)")
@click.option("--jwt-issuer", help="accept bearer JWTs from this issuer (e.g. https://sts.windows.net/<tenant id>/)")
@click.option("--jwt-audience", help="... whose audience is this (e.g. 8adf8e6e-67b2-4cf2-a259-e3dc5476c621)")
@click.option("--jwt-jwks-uri", help="... signed by a key from this JWKS URL")
@click.option("--jwt-jwks-file", type=click.Path(exists=True, dir_okay=False), help="... or this JWKS file")
@click.option("--jwt-algorithms", default=None, help="allowed algorithms, space-separated (default RS256)")
@click.option("--no-jwt", is_flag=True, help="stop accepting issued JWTs")
@click.option("--master-data/--no-master-data", default=None,
              help="offer plan2learn's master-data extensions (org units, employments, EAN) to this tenant "
                   "(default on); off, the tenant sees plain SCIM 2.0 Users and Groups")
@click.option("--sync-max-deactivations", default=None,
              help="the sync's deactivation guard for this tenant: a count (25) or a percentage (5%); "
                   "'default' goes back to 10 users or 5 %, whichever is larger")
def tenant_set(name: str, org_unit_attribute: str | None, jwt_issuer: str | None, jwt_audience: str | None,
               jwt_jwks_uri: str | None, jwt_jwks_file: str | None, jwt_algorithms: str | None,
               no_jwt: bool, master_data: bool | None, sync_max_deactivations: str | None) -> None:
    """Change a tenant's settings."""
    jwt_given = any(v is not None for v in (jwt_issuer, jwt_audience, jwt_jwks_uri, jwt_jwks_file, jwt_algorithms))
    if jwt_given and not (jwt_issuer and jwt_audience and (jwt_jwks_uri or jwt_jwks_file)):
        raise click.UsageError("a JWT trust needs --jwt-issuer, --jwt-audience and --jwt-jwks-uri or --jwt-jwks-file")
    try:
        with _database().begin() as session:
            found = tenant_store.get_tenant(session, name)
            values = dict(found.settings or {})
            if org_unit_attribute is not None:
                values["org_unit_attribute"] = None if org_unit_attribute == "none" else org_unit_attribute
            if master_data is not None:
                values["master_data"] = master_data
            if sync_max_deactivations == "default":
                values.pop("sync_max_deactivations", None)
            elif sync_max_deactivations is not None:
                try:
                    parse_limit(sync_max_deactivations, 0)
                except SyncRefused as exc:
                    raise click.UsageError(str(exc).replace("--max-deactivations", "--sync-max-deactivations")) from None
                values["sync_max_deactivations"] = sync_max_deactivations
            if no_jwt:
                values.pop("jwt", None)
            elif jwt_given:
                values["jwt"] = {"issuer": jwt_issuer, "audience": jwt_audience, "jwks_uri": jwt_jwks_uri,
                                 "jwks_file": os.path.abspath(jwt_jwks_file) if jwt_jwks_file else None,
                                 "algorithms": (jwt_algorithms or "RS256").split()}
            found.settings = values
            click.echo(f"tenant {name!r}: {values}", err=True)
    except tenant_store.TenantError as exc:
        raise click.ClickException(str(exc)) from exc


@tenant.command("list")
def tenant_list() -> None:
    from sqlalchemy import select

    from .storage.models import Tenant
    sessions = _database()
    with sessions() as session:
        for row in session.scalars(select(Tenant).order_by(Tenant.name)):
            click.echo(row.name)


@main.group()
def token() -> None:
    """Long-lived bearer tokens (what Entra ID calls the "Secret Token")."""


@token.command("create")
@click.option("--tenant", "tenant_name", required=True)
@click.option("--description", default="")
@click.option("--scope", default="scim:read scim:write", show_default=True)
@click.option("--expires-in-days", type=int, default=None, help="default: never expires")
def token_create(tenant_name: str, description: str, scope: str, expires_in_days: int | None) -> None:
    """Create a token and print it (only it) on stdout. It cannot be shown again."""
    sessions = _database()
    try:
        scope = clients.check_scope(scope)
    except tenant_store.TenantError as exc:
        raise click.BadParameter(str(exc), param_hint="--scope") from exc
    expires = None
    if expires_in_days is not None:
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=expires_in_days)
    try:
        with sessions.begin() as session:
            found = tenant_store.get_tenant(session, tenant_name)
            value = tenant_store.create_token(session, found, description, scope, expires)
    except tenant_store.TenantError as exc:
        raise click.ClickException(str(exc)) from exc
    sys.stdout.write(value + "\n")


@token.command("list")
@click.option("--tenant", "tenant_name", required=True)
@click.option("--all", "show_all", is_flag=True, help="include revoked and expired tokens")
def token_list(tenant_name: str, show_all: bool) -> None:
    """One JSON line per token (never the token itself: it is not stored)."""
    from sqlalchemy import select

    from .storage.models import BearerToken, utcnow
    sessions = _database()
    with sessions() as session:
        found = _tenant_or_fail(session, tenant_name)
        now = utcnow()
        for row in session.scalars(select(BearerToken).where(BearerToken.tenant_id == found.id)
                                   .order_by(BearerToken.created)):
            active = row.revoked_at is None and (row.expires_at is None or row.expires_at > now)
            if active or show_all:
                click.echo(json.dumps({"token_id": row.id, "description": row.description, "scope": row.scope,
                                       "client_id": row.client_id, "created": _iso(row.created),
                                       "expires_at": _iso(row.expires_at), "revoked_at": _iso(row.revoked_at),
                                       "active": active}))


def _revoke(model, key: str, what: str, revoke) -> None:
    """Revoke the ``model`` row ``key`` with ``revoke(session, row)``; unknown keys are an error."""
    with _database().begin() as session:
        row = session.get(model, key)
        if row is None:
            raise click.ClickException(f"no {what} {key!r}")
        revoke(session, row)


@token.command("revoke")
@click.argument("token_id")
def token_revoke(token_id: str) -> None:
    """Revoke a token by its id (from `token list`); workers stop accepting it within the token cache time."""
    from .storage.models import BearerToken
    _revoke(BearerToken, token_id, "token", clients.revoke_token)
    click.echo(f"revoked token {token_id}", err=True)


@main.group()
def client() -> None:
    """OAuth 2.0 clients (client credentials grant at /oauth/token)."""


@client.command("create")
@click.option("--tenant", "tenant_name", required=True)
@click.option("--scope", default="scim:read scim:write", show_default=True)
@click.option("--description", default="")
@click.option("--jwks-file", type=click.Path(exists=True, dir_okay=False),
              help="the client's public JWKS: it authenticates with private_key_jwt instead of a secret")
def client_create(tenant_name: str, scope: str, description: str, jwks_file: str | None) -> None:
    """Register a client; prints {"client_id", "client_secret"} as JSON (the secret is shown only now)."""
    sessions = _database()
    jwks = None
    if jwks_file:
        with open(jwks_file, encoding="utf-8") as handle:
            jwks = json.load(handle)
        if "keys" not in jwks:
            jwks = {"keys": [jwks]}
    try:
        with sessions.begin() as session:
            found = tenant_store.get_tenant(session, tenant_name)
            row, secret = clients.create_client(session, found, scope, description, jwks)
            out = {"client_id": row.client_id, "client_secret": secret, "scope": row.scope,
                   "token_endpoint_auth_method": row.auth_method}
    except tenant_store.TenantError as exc:
        raise click.ClickException(str(exc)) from exc
    sys.stdout.write(json.dumps(out) + "\n")


@client.command("list")
@click.option("--tenant", "tenant_name", required=True)
def client_list(tenant_name: str) -> None:
    """One JSON line per client."""
    from sqlalchemy import select

    from .storage.models import OAuthClient
    sessions = _database()
    with sessions() as session:
        found = _tenant_or_fail(session, tenant_name)
        for row in session.scalars(select(OAuthClient).where(OAuthClient.tenant_id == found.id)
                                   .order_by(OAuthClient.created)):
            click.echo(json.dumps({"client_id": row.client_id, "scope": row.scope, "description": row.description,
                                   "token_endpoint_auth_method": row.auth_method, "created": _iso(row.created),
                                   "revoked_at": _iso(row.revoked_at)}))


@client.command("revoke")
@click.argument("client_id")
def client_revoke(client_id: str) -> None:
    """Revoke a client and every token issued to it."""
    from .storage.models import OAuthClient
    _revoke(OAuthClient, client_id, "client", clients.revoke_client)
    click.echo(f"revoked client {client_id} and its tokens", err=True)


@main.command("audit")
@click.option("--tenant", "tenant_name", required=True)
@click.option("--resource", default=None, help="only this resource id")
@click.option("--since", default=None, help="ISO 8601 date-time")
@click.option("--limit", default=100, show_default=True)
def audit_command(tenant_name: str, resource: str | None, since: str | None, limit: int) -> None:
    """The audit trail, newest first, one JSON line per change."""
    from .http.admin import event_json
    sessions = _database()
    moment = None
    if since:
        try:
            moment = dt.datetime.fromisoformat(since)
        except ValueError as exc:
            raise click.BadParameter(f"not an ISO 8601 date-time: {since}", param_hint="--since") from exc
        moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    with sessions() as session:
        found = _tenant_or_fail(session, tenant_name)
        for event in audit.page_of_events(session, found.id, resource, moment, None, limit=limit):
            click.echo(json.dumps(event_json(event), ensure_ascii=False))


def _tenant_or_fail(session, name: str):
    try:
        return tenant_store.get_tenant(session, name)
    except tenant_store.TenantError as exc:
        raise click.ClickException(str(exc)) from exc


def _iso(value):
    return value.isoformat() if value is not None else None


# the sync from HR, payroll and member registers (scim_server/sync)
main.add_command(sync_command)
main.add_command(sync_runs_command)
main.add_command(source_group)


if __name__ == "__main__":
    main()
