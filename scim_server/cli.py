"""The ``scim-server`` command: serve, migrate, and manage tenants and tokens.

Commands that print a credential print it alone on stdout, so a script can
capture it: ``TOKEN=$(scim-server token create --tenant acme)``.

An operator's mistake (a database URL that cannot be used, a setting out of range, an
unknown tenant, an unreadable key file, a nonsense number) ends in one line on stderr and
exit status 1 (2 for a wrong option), never in a traceback.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys

import click
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from .config import ConfigError, Settings
from .storage import admins as admin_store
from .storage import audit, clients
from .storage import tenants as tenant_store
from .storage.db import make_engine, make_session_factory, normalise_url
from .storage.migrate import upgrade
from .sync.commands import source_group, sync_command, sync_runs_command
from .sync.engine import parse_limit
from .sync.mapping import SyncRefused


def _sessions(settings: Settings):
    """Sessions for one command; its connections close when the command ends (a process may run
    many commands: the tests do, through click's runner)."""
    engine = make_engine(settings.database_url)
    context = click.get_current_context(silent=True)
    if context is not None:
        context.call_on_close(engine.dispose)
    return make_session_factory(engine)


def _database():
    """Sessions on the configured database, migrated first (every command may be the first run)."""
    settings = Settings.from_env()
    upgrade(settings.database_url)
    return _sessions(settings)


#: administrative acts that leave no audit event (a deleted tenant's events go with it): a
#: record for whatever logging the deployment configures, besides the line the command prints
#: (the NullHandler keeps Python from printing the record a second time when none is configured)
admin_log = logging.getLogger("scim_server.admin")
admin_log.addHandler(logging.NullHandler())
#: the database URLs this server can use
SUPPORTED = "sqlite:///FILE or postgresql://USER@HOST:PORT/DATABASE"
#: the most days a number of days may say (a hundred years)
MAX_DAYS = 36500


def _one_line(exc: BaseException, password: str | None = None) -> str:
    """A database error's own message (the driver's, without SQLAlchemy's wrapping), on one line."""
    text = " ".join(str(getattr(exc, "orig", None) or exc).split())
    return text.replace(password, "***") if password else text


def check_database(url: str) -> None:
    """Refuse, in one line naming the database (password masked), a database URL that cannot be
    parsed, names a database or driver this server cannot use, or a database that cannot be
    opened. Every command runs this first."""
    label = tenant_store.database_label(url)
    try:
        parsed = make_url(normalise_url(url))
    except (ArgumentError, ValueError):
        raise click.ClickException(f"SCIM_DATABASE_URL is not a database URL: {label!r} (use {SUPPORTED})") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise click.ClickException(f"SCIM_DATABASE_URL names an unsupported database {parsed.drivername!r} "
                                   f"({label}): use {SUPPORTED}")
    connect_args = {"connect_timeout": 10} if parsed.get_backend_name() == "postgresql" else {}
    try:
        engine = create_engine(parsed, connect_args=connect_args)
    except (NoSuchModuleError, ImportError):
        raise click.ClickException(f"SCIM_DATABASE_URL names a database driver that is not installed: "
                                   f"{parsed.drivername!r} ({label}): use {SUPPORTED}") from None
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as exc:
        raise click.ClickException(f"cannot open the database {label}: {_one_line(exc, parsed.password)}") from None
    finally:
        engine.dispose()


class _UsageLine(click.ClickException):
    """A usage error (exit status 2) told in one line: the message and where help is."""

    exit_code = 2


#: click's "no arguments: show the help" (click 8.2 and later), which is no error to shorten
_SHOW_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _usage_line(exc: click.UsageError) -> click.ClickException:
    where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
    return _UsageLine(exc.format_message() + where)


class _Commands(click.Group):
    """The top-level group: what goes wrong in any command because of the environment or the
    database ends as one line (``Error: ...``, exit status 1), never a traceback; a wrong
    option or argument is one line too (exit status 2), without click's usage block."""

    def make_context(self, *args, **kwargs) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            if isinstance(exc, _SHOW_HELP):
                raise
            raise _usage_line(exc) from None

    def invoke(self, ctx: click.Context):
        try:
            if not ctx.resilient_parsing and _runs_a_command(ctx):
                try:
                    url = Settings.from_env().database_url
                except ConfigError as exc:
                    raise click.ClickException(str(exc)) from None
                check_database(url)
            return super().invoke(ctx)
        except click.UsageError as exc:
            if isinstance(exc, _SHOW_HELP):
                raise
            raise _usage_line(exc) from None
        except (ConfigError, tenant_store.TenantError) as exc:
            raise click.ClickException(str(exc)) from None
        except SQLAlchemyError as exc:
            url = os.environ.get("SCIM_DATABASE_URL") or Settings.database_url
            password = None
            try:
                password = make_url(url).password
            except (ArgumentError, ValueError):
                pass
            raise click.ClickException(f"database error in {tenant_store.database_label(url)}: "
                                       f"{_one_line(exc, password)}") from None


@click.group(cls=_Commands)
def main() -> None:
    """plan2learn SCIM 2.0 provisioning server."""


def _runs_a_command(ctx: click.Context) -> bool:
    """Whether the arguments after ``scim-server`` run a command (every command needs the database,
    which is checked first), rather than ask for help, name a group alone or a command that does
    not exist (click answers those without a database)."""
    protected = ctx._protected_args if hasattr(ctx, "_protected_args") else ctx.protected_args  # click < 8.2
    args = [*protected, *ctx.args]
    if any(arg in ctx.help_option_names for arg in args):
        return False
    command: click.Command = ctx.command
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        found = command.get_command(ctx, args[0])
        if found is None:
            return False
        command, args = found, args[1:]
    return not isinstance(command, click.Group) or command.invoke_without_command or bool(args)


class _EnvRange(click.IntRange):
    """An integer range whose error names the environment variable a wrong value came from."""

    def fail(self, message: str, param: click.Parameter | None = None, ctx: click.Context | None = None):
        if (param is not None and ctx is not None and param.envvar and param.name
                and ctx.get_parameter_source(param.name) == click.core.ParameterSource.ENVIRONMENT):
            message = f"{message} (from {param.envvar})"
        super().fail(message, param, ctx)


@main.command()
@click.option("--host", envvar="SCIM_HOST", default="127.0.0.1", show_default=True)
@click.option("--port", envvar="SCIM_PORT", default=8080, type=_EnvRange(1, 65535), show_default=True)
@click.option("--workers", envvar="SCIM_WORKERS", default=0, type=_EnvRange(0, 256),
              help="gunicorn worker processes (default: 2 x CPU cores, at most 8)")
@click.option("--threads", envvar="SCIM_THREADS", default=4, type=_EnvRange(1, 1000),
              show_default=True, help="threads per worker")
@click.option("--demo", is_flag=True, help="create a 'demo' tenant if missing and print a fresh token for it")
def serve(host: str, port: int, workers: int, threads: int, demo: bool) -> None:
    """Migrate the database, then serve the API with gunicorn."""
    settings = Settings.from_env()
    click.echo(f"database: {tenant_store.database_label(settings.database_url)}", err=True)
    upgrade(settings.database_url)
    if demo:
        token, password = _demo_tenant(settings)
        public = settings.public_base_url or f"http://{host}:{port}{settings.base_path}"
        click.echo(f"SCIM base URL: {public}", err=True)
        click.echo(f"Bearer token:  {token}", err=True)
        click.echo(f"Try: curl -H 'Authorization: Bearer {token}' {public}/Users", err=True)
        console = public.removesuffix(settings.base_path) + "/console/"
        click.echo(f"Console:       {console}  (sign in as {DEMO_ADMIN} / {password})", err=True)
    from .serving import run_gunicorn
    run_gunicorn(host, port, workers or min(8, 2 * (os.cpu_count() or 1)), threads)


#: the demo tenant's console admin, whose password ``serve --demo`` makes anew at every start
DEMO_ADMIN = "admin@demo.example"


def _demo_tenant(settings: Settings) -> tuple[str, str]:
    """The demo tenant (made and loaded if missing): a fresh bearer token, and a fresh password
    for its console admin."""
    import secrets

    from .storage import admins
    sessions = _sessions(settings)
    with sessions.begin() as session:
        try:
            tenant = tenant_store.get_tenant(session, "demo")
        except tenant_store.TenantError:
            tenant = tenant_store.create_tenant(session, "demo")
            _load_demo(session, tenant.id)
        password = secrets.token_urlsafe(12)
        admins.remove_admin(session, DEMO_ADMIN)
        admins.create_admin(session, DEMO_ADMIN, password, tenant.id)
        return tenant_store.create_token(session, tenant, description="demo (scim-server serve --demo)"), password


def _load_demo(session, tenant_id: int, employees: int = 3000, externals: int = 300, seed: int = 2026) -> None:
    from . import demo
    summary = demo.load(session, tenant_id, employees=employees, externals=externals, seed=seed)
    click.echo(f"demo data: {summary.units} org units, {summary.employees} employees "
               f"({summary.leavers} leavers, {summary.future_starters} future starters), "
               f"{summary.externals} external users", err=True)


@main.command("demo")
@click.option("--tenant", "tenant_name", default="demo", show_default=True)
@click.option("--employees", default=3000, show_default=True, type=click.IntRange(0, 1_000_000),
              help="at least one leader per org unit is always created")
@click.option("--externals", default=300, show_default=True, type=click.IntRange(0, 1_000_000))
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
@click.option("--now", "now_text", default=None, hidden=True,
              help="for tests only: take this ISO 8601 date-time as the current time")
def deactivate_leavers(tenant_name: str | None, dry_run: bool, now_text: str | None) -> None:
    """Make users whose employments have all ended (or not yet started) inactive, and starters active.

    Idempotent: safe to run from cron every few minutes. Prints one line per change.
    """
    from .storage import leavers
    now = _moment(now_text, "--now") if now_text else None
    sessions = _database()
    audit.current.set(audit.Actor("system:deactivate-leavers"))
    with sessions.begin() as session:
        tenant_id = _tenant_or_fail(session, tenant_name).id if tenant_name else None
        changes = leavers.evaluate(session, tenant_id=tenant_id, dry_run=dry_run, now=now)
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
@click.option("--audit-retention-days", type=click.IntRange(0, MAX_DAYS), default=None,
              help="keep the tenant's audit trail and sync run log this many days (applied by "
                   "`scim-server audit purge`); 0 keeps them for ever (the default)")
def tenant_set(name: str, org_unit_attribute: str | None, jwt_issuer: str | None, jwt_audience: str | None,
               jwt_jwks_uri: str | None, jwt_jwks_file: str | None, jwt_algorithms: str | None,
               no_jwt: bool, master_data: bool | None, sync_max_deactivations: str | None,
               audit_retention_days: int | None) -> None:
    """Change a tenant's settings."""
    jwt_given = any(v is not None for v in (jwt_issuer, jwt_audience, jwt_jwks_uri, jwt_jwks_file, jwt_algorithms))
    if jwt_given and not (jwt_issuer and jwt_audience and (jwt_jwks_uri or jwt_jwks_file)):
        raise click.UsageError("a JWT trust needs --jwt-issuer, --jwt-audience and --jwt-jwks-uri or --jwt-jwks-file")
    algorithms = (jwt_algorithms or "RS256").split()
    if jwt_given:
        unknown = [a for a in algorithms if a not in _KEY_TYPES]
        if unknown or not algorithms:
            raise click.BadParameter(f"{' '.join(unknown) or 'none given'}: use public-key algorithms "
                                     f"({', '.join(_KEY_TYPES)})", param_hint="--jwt-algorithms")
        if jwt_jwks_file:
            read_jwks(jwt_jwks_file, "--jwt-jwks-file", algorithms)
    try:
        with _database().begin() as session:
            found = tenant_store.get_tenant(session, name)
            values = dict(found.settings or {})
            if audit_retention_days == 0:
                values.pop("audit_retention_days", None)
            elif audit_retention_days is not None:
                values["audit_retention_days"] = audit_retention_days
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
                                 "algorithms": algorithms}
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
        names = list(session.scalars(select(Tenant.name).order_by(Tenant.name)))
        for name in names:
            click.echo(name)
        if not names:
            click.echo(f"no tenants in {tenant_store.database_label(session.get_bind().url)}", err=True)


@tenant.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
def tenant_delete(name: str, yes: bool) -> None:
    """Delete a tenant and every row of it: users, groups, memberships, tokens, clients, audit
    trail, sources and sync runs. It cannot be undone."""
    sessions = _database()
    with sessions.begin() as session:
        found = _tenant_or_fail(session, name)
        where = tenant_store.database_label(session.get_bind().url)
        counts = tenant_store.tenant_rows(session, found.id)
        if not yes:
            click.confirm(f"Delete tenant {name!r} in {where} and all its data ({_counted(counts)})?",
                          abort=True, err=True)
        tenant_id = found.id
        counts = tenant_store.delete_tenant(session, found)
    message = f"deleted tenant {name!r} (id {tenant_id}) from {where}: {_counted(counts)}"
    click.echo(message, err=True)
    admin_log.warning(message, extra={"fields": {"event": "tenant deleted", "tenant": name, "tenant_id": tenant_id,
                                                 "database": where, "rows": counts}})


def _counted(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {label}" for label, n in counts.items())


@main.group()
def token() -> None:
    """Long-lived bearer tokens (what Entra ID calls the "Secret Token")."""


@token.command("create")
@click.option("--tenant", "tenant_name", required=True)
@click.option("--description", default="")
@click.option("--scope", default="scim:read scim:write", show_default=True)
@click.option("--expires-in-days", type=click.IntRange(1, MAX_DAYS), default=None, help="default: never expires")
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
            raise click.ClickException(f"no {what} {key!r} in {tenant_store.database_label(session.get_bind().url)}")
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
    jwks = read_jwks(jwks_file, "--jwks-file") if jwks_file else None
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


@main.group("audit", invoke_without_command=True)
@click.option("--tenant", "tenant_name", default=None, help="the tenant whose trail to show (required)")
@click.option("--resource", default=None, help="only this resource id")
@click.option("--since", default=None, help="ISO 8601 date-time")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1_000_000))
@click.pass_context
def audit_command(ctx: click.Context, tenant_name: str | None, resource: str | None, since: str | None,
                  limit: int) -> None:
    """The audit trail, newest first, one JSON line per change (`audit purge` and `audit erase`:
    keeping personal data no longer than needed)."""
    if ctx.invoked_subcommand is not None:
        given = [f"--{name}" for name in ("tenant", "resource", "since", "limit")
                 if ctx.get_parameter_source(name.replace("tenant", "tenant_name"))
                 not in (None, click.core.ParameterSource.DEFAULT)]
        if given:
            raise click.UsageError(f"give {', '.join(given)} after 'audit {ctx.invoked_subcommand}', not before")
        return
    if tenant_name is None:
        raise click.UsageError("Missing option '--tenant'.")
    from .http.admin import event_json
    moment = _moment(since, "--since") if since else None
    sessions = _database()
    with sessions() as session:
        found = _tenant_or_fail(session, tenant_name)
        for event in audit.page_of_events(session, found.id, resource, moment, None, limit=limit):
            click.echo(json.dumps(event_json(event), ensure_ascii=False))


@audit_command.command("purge")
@click.option("--older-than", "older_than", type=click.IntRange(1, MAX_DAYS), default=None,
              help="delete what is older than this many days (default: each tenant's --audit-retention-days)")
@click.option("--tenant", "tenant_name", default=None, help="only this tenant (default: all)")
def audit_purge(older_than: int | None, tenant_name: str | None) -> None:
    """Delete audit events and sync runs older than the retention period. Run it from cron (daily).

    Without --older-than each tenant's own retention period applies (`tenant set
    --audit-retention-days`) and tenants without one keep everything. Each purge that deleted
    something is recorded in the tenant's trail (operation "system").
    """
    from sqlalchemy import select

    from .storage.models import Tenant
    sessions = _database()
    audit.current.set(audit.Actor("system:audit-purge"))
    now = dt.datetime.now(dt.UTC)
    with sessions.begin() as session:
        if tenant_name is not None:
            chosen = [_tenant_or_fail(session, tenant_name)]
            days = older_than or (chosen[0].settings or {}).get("audit_retention_days")
            if not days:
                raise click.ClickException(f"tenant {tenant_name!r} has no audit retention period: give "
                                           f"--older-than DAYS or set one with `scim-server tenant set "
                                           f"{tenant_name} --audit-retention-days DAYS`")
        else:
            chosen = list(session.scalars(select(Tenant).order_by(Tenant.name)))
        total = 0
        for found in chosen:
            days = older_than or (found.settings or {}).get("audit_retention_days")
            if not days:
                continue
            rule = (f"older than {days} days (audit purge --older-than)" if older_than
                    else f"audit retention of {days} days")
            events, runs = audit.purge(session, found.id, now - dt.timedelta(days=days), rule)
            total += events + runs
            click.echo(f"{found.name}\t{events} audit event(s)\t{runs} sync run(s)\tolder than {days} days")
    click.echo(f"{total} row(s) purged", err=True)


@audit_command.command("erase")
@click.option("--tenant", "tenant_name", required=True)
@click.option("--user", "user_id", required=True, help="the user's id (SCIM id)")
def audit_erase(tenant_name: str, user_id: str) -> None:
    """Erase one person's personal data from the audit trail, keeping the events.

    The values in the user's own events, and the values naming them in other events (as a
    manager, as a group member), become "[erased]"; who, when, the operation and which
    attributes changed stay. The erasure is recorded (operation "system").
    """
    from .storage.models import User
    sessions = _database()
    audit.current.set(audit.Actor("system:audit-erase"))
    with sessions.begin() as session:
        found = _tenant_or_fail(session, tenant_name)
        naming, own, others = audit.erase_user(session, found.id, user_id)
        if not naming:
            raise click.ClickException(f"no audit event of tenant {tenant_name!r} names user {user_id!r} "
                                       f"(in {tenant_store.database_label(session.get_bind().url)})")
        alive = session.get(User, user_id)
        if alive is not None and alive.tenant_id == found.id:
            click.echo(f"warning: user {user_id} still exists in tenant {tenant_name!r}: its current data stays "
                       f"until it is deleted (DELETE /Users/{user_id})", err=True)
    if own or others:
        click.echo(f"erased user {user_id} from {own} of its own audit event(s) and {others} other event(s)",
                   err=True)
    else:
        click.echo(f"nothing left to erase: the {naming} audit event(s) naming user {user_id} are erased already",
                   err=True)


def _moment(text: str, option: str) -> dt.datetime:
    """An ISO 8601 date-time option, in UTC (a naive one is taken as UTC)."""
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
        return moment.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise click.BadParameter(f"not an ISO 8601 date-time this server can store: {text}",
                                 param_hint=option) from None


#: the algorithms of a JWT signed with a public key, and the key type each needs (and curve, if any)
_KEY_TYPES = {"RS256": ("RSA", None), "RS384": ("RSA", None), "RS512": ("RSA", None),
              "PS256": ("RSA", None), "PS384": ("RSA", None), "PS512": ("RSA", None),
              "ES256": ("EC", "P-256"), "ES384": ("EC", "P-384"), "ES512": ("EC", "P-521"),
              "ES256K": ("EC", "secp256k1"), "EdDSA": ("OKP", None), "Ed25519": ("OKP", "Ed25519"),
              "Ed448": ("OKP", "Ed448")}
#: members of a JWK that only a private key has
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


def read_jwks(path: str, option: str, algorithms: list[str] | None = None) -> dict:
    """A public JWKS from a file, checked now rather than at the first JWT: JSON, a key set (or one
    key), public keys only, each readable, at least one usable for signatures (with one of
    ``algorithms``, if given)."""
    from joserfc.jwk import KeySet

    def refuse(reason: str) -> click.BadParameter:
        return click.BadParameter(f"{path}: {reason}", param_hint=option)

    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise refuse(f"cannot be read ({exc.strerror})") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise refuse(f"is not JSON ({' '.join(str(exc).split())})") from None
    if isinstance(data, dict) and "keys" not in data and "kty" in data:
        data = {"keys": [data]}  # a single key
    keys = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(keys, list) or not keys or not all(isinstance(k, dict) for k in keys):
        raise refuse('holds no key set: a JWKS is {"keys": [{"kty": "RSA", "n": ..., "e": ...}, ...]}')
    usable = 0
    for number, key in enumerate(keys, 1):
        kty = key.get("kty")
        if kty not in ("RSA", "EC", "OKP"):
            raise refuse(f"key {number} is not a public key (kty {kty!r}; use RSA, EC or OKP keys)")
        if any(member in key for member in _PRIVATE_MEMBERS):
            raise refuse(f"key {number} is a private key: give the public keys only")
        try:
            KeySet.import_key_set({"keys": [key]})
        except Exception as exc:  # joserfc and cryptography raise many kinds for bad key material
            raise refuse(f"key {number} cannot be read as a {kty} public key "
                         f"({' '.join(str(exc).split()) or type(exc).__name__})") from None
        if key.get("use", "sig") != "sig" or ("key_ops" in key and "verify" not in (key.get("key_ops") or [])):
            continue
        if algorithms and not any(_KEY_TYPES[a][0] == kty and _KEY_TYPES[a][1] in (None, key.get("crv"))
                                  and key.get("alg", a) == a for a in algorithms):
            continue
        usable += 1
    if not usable:
        raise refuse("holds no public key usable for signatures"
                     + (f" with {' or '.join(algorithms)}" if algorithms else ""))
    return data


def _tenant_or_fail(session, name: str):
    try:
        return tenant_store.get_tenant(session, name)
    except tenant_store.TenantError as exc:
        raise click.ClickException(str(exc)) from exc


def _iso(value):
    return value.isoformat() if value is not None else None


@tenant.command("rate-limit")
@click.argument("name")
@click.option("--per-second", type=click.IntRange(min=0), help="requests per second, all the tenant's tokens together "
              "(0: no limit)")
@click.option("--burst", type=click.IntRange(min=1), help="requests at once (the bucket's size; default: 2 x --per-second)")
@click.option("--token-percent", type=click.IntRange(1, 100),
              help="the share one token, OAuth client or JWT subject may use (100: no limit of its own)")
@click.option("--off", is_flag=True, help="no rate limit for this tenant")
@click.option("--default", "use_default", is_flag=True, help="back to the server's SCIM_RATE_LIMIT_* settings")
def tenant_rate_limit(name: str, per_second: int | None, burst: int | None, token_percent: int | None,
                      off: bool, use_default: bool) -> None:
    """Set (or, with no option, show) a tenant's rate limit; over it, requests get 429 with Retry-After.
    Applies within SCIM_TOKEN_CACHE_SECONDS."""
    numbers = {k: v for k, v in (("per_second", per_second), ("burst", burst), ("token_percent", token_percent))
               if v is not None}
    if off + use_default + bool(numbers) > 1:
        raise click.UsageError("give --off, --default, or numbers (--per-second, --burst, --token-percent)")
    with _database().begin() as session:
        found = _tenant_or_fail(session, name)
        values = dict(found.settings or {})
        current = values.get("rate_limit")
        if off or per_second == 0:
            values["rate_limit"] = "off"
        elif use_default:
            values.pop("rate_limit", None)
        elif numbers:
            values["rate_limit"] = {**(current if isinstance(current, dict) else {}), **numbers}
        if values != (found.settings or {}):
            found.settings = values
        shown = values.get("rate_limit", "default (SCIM_RATE_LIMIT_PER_SECOND, SCIM_RATE_LIMIT_BURST, "
                                         "SCIM_RATE_LIMIT_TOKEN_PERCENT)")
        click.echo(f"tenant {name!r}: rate limit {json.dumps(shown) if isinstance(shown, dict) else shown}", err=True)


@main.group()
def admin() -> None:
    """Console accounts: tenant admins (one tenant each) and operators (every tenant)."""


def _stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def _new_password() -> str:
    """The new account's password: asked twice, hidden, at a terminal; else the first line of stdin
    (without its line break), so a script can pipe it in."""
    if _stdin_is_terminal():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    return sys.stdin.readline().removesuffix("\n").removesuffix("\r")


@admin.command("create")
@click.argument("email")
@click.option("--tenant", "tenant_name", default=None, help="a tenant admin: sees and acts on this tenant only")
@click.option("--operator", is_flag=True, help="an operator (plan2learn staff): sees every tenant")
def admin_create(email: str, tenant_name: str | None, operator: bool) -> None:
    """Create a console account. The password is read from stdin (one line) when it is not a
    terminal, else asked for twice; it needs at least 12 characters."""
    if (tenant_name is not None) == operator:
        raise click.UsageError("give either --tenant NAME (a tenant admin) or --operator, not both, not neither")
    sessions = _database()
    try:
        address = admin_store.normalise_email(email)
        with sessions() as session:  # the mistakes that need no password, before asking for one
            if tenant_name is not None:
                _tenant_or_fail(session, tenant_name)
            if admin_store.find_admin(session, address) is not None:
                raise admin_store.AdminError(f"an account for {address} already exists")
        password = _new_password()
        with sessions.begin() as session:
            tenant_id = _tenant_or_fail(session, tenant_name).id if tenant_name is not None else None
            created = admin_store.create_admin(session, address, password, tenant_id)
            address = created.email
    except admin_store.AdminError as exc:
        raise click.ClickException(str(exc)) from None
    message = (f"created tenant admin {address} for tenant {tenant_name}" if tenant_name is not None
               else f"created operator {address}")
    click.echo(message, err=True)
    admin_log.warning(message, extra={"fields": {"event": "console account created", "email": address,
                                                 "tenant": tenant_name}})


@admin.command("list")
def admin_list() -> None:
    """One tab-separated line per account: e-mail, `operator` or `tenant NAME`, created, last sign-in."""
    from sqlalchemy import select

    from .storage.models import Tenant
    sessions = _database()
    with sessions() as session:
        names = dict(session.execute(select(Tenant.id, Tenant.name)).all())
        accounts = admin_store.list_admins(session)
        for account in accounts:
            role = "operator" if account.tenant_id is None else f"tenant {names.get(account.tenant_id, '?')}"
            click.echo(f"{account.email}\t{role}\t{_iso(account.created)}\t{_iso(account.last_sign_in) or '-'}")
        if not accounts:
            click.echo(f"no console accounts in {tenant_store.database_label(session.get_bind().url)}", err=True)


@admin.command("remove")
@click.argument("email")
def admin_remove(email: str) -> None:
    """Remove a console account; its sessions end with it."""
    with _database().begin() as session:
        address = email.strip().lower()
        if not admin_store.remove_admin(session, address):
            raise click.ClickException(f"no console account {address!r} in "
                                       f"{tenant_store.database_label(session.get_bind().url)}")
    message = f"removed {address}"
    click.echo(message, err=True)
    admin_log.warning(message, extra={"fields": {"event": "console account removed", "email": address}})


# the sync from HR, payroll and member registers (scim_server/sync)
main.add_command(sync_command)
main.add_command(sync_runs_command)
main.add_command(source_group)


if __name__ == "__main__":
    main()
