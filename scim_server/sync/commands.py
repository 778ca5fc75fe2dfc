"""``scim-server sync``, ``sync-runs`` and ``source``: the sync from the command line (cron).

The flags are a contract with scripts and cron lines: keep them as they are.
Exit status: 0 applied (or a dry run) without row errors, 1 some rows had errors (the
valid ones are applied), 2 the run was refused as a whole and nothing was written.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable

import click

from ..config import Settings
from ..storage import audit, sources
from ..storage import tenants as tenant_store
from ..storage.db import make_engine, make_session_factory
from ..storage.migrate import upgrade
from .engine import SnapshotSync, SyncOptions, SyncResult, parse_limit, run_json
from .mapping import SyncRefused, load_mapping


def _sessions():
    """The settings, and sessions for this command (migrated first); the connections close when
    the command ends."""
    settings = Settings.from_env()
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    context = click.get_current_context(silent=True)
    if context is not None:
        context.call_on_close(engine.dispose)
    return settings, make_session_factory(engine)


def _tenant(session, name: str):
    try:
        return tenant_store.get_tenant(session, name)
    except tenant_store.TenantError as exc:
        raise click.ClickException(str(exc)) from None


def _progress() -> Callable[[int, int], None] | None:
    """A progress line on stderr when it is a terminal; nothing when it is not (cron, a pipe)."""
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        click.echo(f"\rpeople {done}/{total}", err=True, nl=done >= total)

    return show


@click.command("sync")
@click.option("--tenant", "tenant_name", required=True)
@click.option("--source", "source_name", required=True, help="the feed's name: hr, payroll, members, ...")
@click.option("--users", "users_file", type=click.Path(dir_okay=False), help="users file (CSV or XLSX)")
@click.option("--units", "units_file", type=click.Path(dir_okay=False), help="org units file (CSV or XLSX)")
@click.option("--mapping", "mapping_file", type=click.Path(dir_okay=False), help="column mapping (TOML)")
@click.option("--partial", is_flag=True, help="apply the rows given only: nobody is deactivated by absence")
@click.option("--dry-run", is_flag=True, help="write nothing; print what would change")
@click.option("--max-deactivations", default=None, help="the guard's limit: a count (25) or a percentage (5%)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object instead of text")
def sync_command(tenant_name: str, source_name: str, users_file: str | None, units_file: str | None,
                 mapping_file: str | None, partial: bool, dry_run: bool, max_deactivations: str | None,
                 as_json: bool) -> None:
    """Sync a source's users and org units from files (a full snapshot unless --partial)."""
    if users_file is None and units_file is None:
        raise click.UsageError("give --users FILE, --units FILE or both")
    settings, sessions = _sessions()
    audit.current.set(audit.Actor("cli:sync"))
    try:
        mapping = load_mapping(mapping_file)
        if max_deactivations is not None:
            parse_limit(max_deactivations, 0)  # a bad value is refused before anything is read
    except SyncRefused as exc:
        _finish(SyncResult(None, "refused", message=str(exc)), as_json, dry_run)
        return
    options = SyncOptions(source=source_name, users_file=users_file, units_file=units_file, mapping=mapping,
                          partial=partial, dry_run=dry_run, max_deactivations=max_deactivations)
    with sessions.begin() as session:
        tenant = _tenant(session, tenant_name)
        try:
            result = SnapshotSync(session, tenant.id, dict(tenant.settings or {}), options,
                                  settings.public_base_url or settings.base_path, _progress()).run()
        except sources.SourceError as exc:
            raise click.ClickException(str(exc)) from None
    _finish(result, as_json, dry_run)


def _finish(result: SyncResult, as_json: bool, dry_run: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.as_json(), ensure_ascii=False))
    else:
        for line in result.changes:  # a dry run's diff; an applied run reports the units it kept
            if dry_run or ": kept (" in line:
                click.echo(line)
        for conflict in result.conflicts:
            click.echo(f"conflict: {conflict}")
        for error in result.errors:
            click.echo(f"error: {error}")
        if result.message:
            click.echo(f"refused: {result.message}" if result.status == "refused" else result.message)
        click.echo(result.summary)
    sys.exit(result.exit_status)


@click.command("sync-runs")
@click.option("--tenant", "tenant_name", required=True)
@click.option("--source", "source_name", default=None)
@click.option("--limit", default=20, type=click.IntRange(1, 1000), show_default=True)
def sync_runs_command(tenant_name: str, source_name: str | None, limit: int) -> None:
    """The sync run log, newest first: one JSON line per run."""
    _, sessions = _sessions()
    with sessions.begin() as session:
        tenant = _tenant(session, tenant_name)
        source = None
        if source_name is not None:
            source = sources.source(session, tenant.id, source_name, create=False)
            if source is None:
                raise click.ClickException(f"tenant '{tenant_name}' has no source '{source_name}'")
        names = {s.id: s.name for s in sources.sources(session, tenant.id)}
        for run in sources.runs(session, tenant.id, source.id if source else None, limit):
            click.echo(json.dumps(run_json(run, names.get(run.source_id)), ensure_ascii=False))


@click.group("source")
def source_group() -> None:
    """Sources of master data (a sync creates its source on first use too)."""


@source_group.command("create")
@click.option("--tenant", "tenant_name", required=True)
@click.argument("name")
def source_create(tenant_name: str, name: str) -> None:
    _, sessions = _sessions()
    with sessions.begin() as session:
        tenant = _tenant(session, tenant_name)
        try:
            found = sources.source(session, tenant.id, name)
        except sources.SourceError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(found.name)


@source_group.command("list")
@click.option("--tenant", "tenant_name", required=True)
def source_list(tenant_name: str) -> None:
    _, sessions = _sessions()
    with sessions.begin() as session:
        for found in sources.sources(session, _tenant(session, tenant_name).id):
            click.echo(found.name)
