"""The import contract: which layer may import what.

The layers (README "How it is built", docs/architecture.md), top to bottom:

    scim_server.http, scim_server.cli   parse the request or the command, call one operation, render
    scim_server.provisioning            the write service: every write of a resource goes through it
    scim_server.storage                 tables and queries
    scim_server.scim                    SCIM semantics with no I/O

Every module under ``scim_server/`` is read with ``ast``, never imported, so a module that
fails to import (or imports slowly) is still checked. Every import counts, wherever it stands:
at the top, inside a function, under ``if TYPE_CHECKING:``. Relative imports are resolved to
absolute names. A failure names the importing module, the line and the import.

Known exceptions are listed with the rule they break and why; an exception that no longer
occurs fails the test too, so the lists only shrink.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "scim_server"
PACKAGE = "scim_server"

#: the web framework: Flask itself and authlib's Flask integrations (which import Flask).
#: werkzeug is not on the list: ``werkzeug.security`` is a password-hashing library to storage.
FLASK = ("flask", "authlib.integrations.flask_client", "authlib.integrations.flask_oauth2")
SQLALCHEMY = ("sqlalchemy",)
SCIM = "scim_server.scim"
STORAGE = "scim_server.storage"
HTTP = "scim_server.http"
PROVISIONING = "scim_server.provisioning"
REPORTS = "scim_server.reports"
CONSOLE = "scim_server.console"
CLI = "scim_server.cli"

#: The modules that may import Flask: the HTTP layer and the modules that build and serve the
#: app. ``app`` is the application factory (it registers the blueprints); ``wsgi`` and
#: ``serving`` (gunicorn) only call it today and import no Flask themselves, but serving the app
#: is their job, so the design allows them Flask. A future ``console`` (pages, templates) belongs
#: here too when it arrives. Nothing else: not the CLI, not the write service, not storage.
FLASK_ALLOWED = ("scim_server.http", "scim_server.console", "scim_server.app", "scim_server.wsgi",
                 "scim_server.serving")

#: The stores that write resources. The HTTP layer and the CLI write a resource through the write
#: service (``scim_server.provisioning``), never through a store's create/replace/patch/delete; as an
#: approximation they may not import the stores' modules at all. (Reads still open stores through
#: ``scim_server.storage.stores``, which this rule cannot tell from a write.)
STORE_MODULES = ("scim_server.storage.users", "scim_server.storage.groups")
#: the CLI, with the demo loader it runs (``scim-server serve --demo``)
CLI_MODULES = ("scim_server.cli", "scim_server.demo")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the absolute name imported: "sqlalchemy.select", "scim_server.storage.audit"
    line: int
    statement: str  # the import as written

    def __str__(self) -> str:
        return f"{self.module} imports {self.target} (line {self.line}: {self.statement})"


def module_name(path: Path) -> tuple[str, bool]:
    """The dotted name of a file under the package, and whether it is a package's ``__init__``."""
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def absolute_base(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The module a ``from ... import`` names, with its dots resolved."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    if node.level - 1 > len(package) - 1:
        raise ValueError(f"{module}: relative import beyond the top-level package (line {node.lineno})")
    anchor = package[:len(package) - (node.level - 1)]
    return ".".join(anchor + ([node.module] if node.module else []))


def imports_in(source: str, module: str, is_package: bool, filename: str = "<source>") -> list[Import]:
    """Every import in a module's source; ``from a import b`` is the name ``a.b`` (b may be a
    module or a name in a: either way it is something from ``a``)."""
    found = []
    lines = source.splitlines()
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = absolute_base(module, is_package, node)
            targets = [base if alias.name == "*" else f"{base}.{alias.name}" if base else alias.name
                       for alias in node.names]
        else:
            continue
        text = lines[node.lineno - 1].strip() if node.lineno <= len(lines) else ""
        found += [Import(module, target, node.lineno, text) for target in targets]
    return found


def _scan() -> dict[str, list[Import]]:
    modules = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        name, is_package = module_name(path)
        modules[name] = imports_in(path.read_text(encoding="utf-8"), name, is_package, str(path))
    return modules


MODULES = _scan()


def within(name: str, prefixes: str | tuple[str, ...]) -> bool:
    """``name`` is one of ``prefixes`` or inside one (``flask.json`` is within ``flask``,
    ``flask_cors`` is not)."""
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@dataclass(frozen=True)
class Rule:
    name: str
    applies_to: object  # module name -> bool
    forbidden: tuple[str, ...]
    why: str
    #: (importing module, forbidden name) pairs tolerated for now, each with its reason beside it
    known_exceptions: frozenset[tuple[str, str]] = frozenset()


RULES = [
    Rule("scim-has-no-io", lambda m: within(m, SCIM),
         FLASK + SQLALCHEMY + (STORAGE, HTTP, PROVISIONING, REPORTS, CONSOLE),
         "scim_server.scim is SCIM semantics with no I/O: no web framework, no database, no upper layer",
         known_exceptions=frozenset({
             # The filter compiler turns a filter's AST into one SQLAlchemy expression (README:
             # "filters.py  the filter compiler: AST -> one SQLAlchemy expression"). It should move
             # to storage (or compile to a neutral tree that storage turns into SQL); until then the
             # SCIM layer's one tie to the database is this module.
             ("scim_server.scim.filters", "sqlalchemy"),
         })),
    Rule("storage-is-below-the-write-service", lambda m: within(m, STORAGE),
         FLASK + (HTTP, PROVISIONING, REPORTS, CONSOLE),
         "scim_server.storage is tables and queries: it knows no request, no write service, no report"),
    Rule("reports-only-read", lambda m: within(m, REPORTS),
         FLASK + (HTTP, CONSOLE, PROVISIONING),
         "scim_server.reports are queries shared by the API and the console: no web framework, no writes"),
    Rule("console-speaks-no-sql", lambda m: within(m, CONSOLE),
         SQLALCHEMY,
         "scim_server.console reads through scim_server.reports and storage's functions, like the HTTP layer"),
    Rule("write-service-knows-no-http", lambda m: within(m, PROVISIONING),
         FLASK + (HTTP,),
         "scim_server.provisioning serves HTTP, the CLI, Bulk and sync alike: no Flask, no views"),
    Rule("http-speaks-no-sql", lambda m: within(m, HTTP),
         SQLALCHEMY,
         "scim_server.http reaches the database through storage (queries) and the write service "
         "(writes); even the database's exceptions it names through scim_server.storage.db"),
    Rule("flask-stays-in-the-web-layer", lambda m: not within(m, FLASK_ALLOWED),
         FLASK,
         f"only {', '.join(FLASK_ALLOWED)} may import Flask"),
    Rule("writes-go-through-the-write-service", lambda m: within(m, (HTTP, CONSOLE) + CLI_MODULES),
         STORE_MODULES,
         "the HTTP layer and the CLI write resources through scim_server.provisioning, not the stores",
         # None today: the CLI's demo loader inserts its rows with Core statements and the leaver
         # job runs in storage.leavers, neither through the stores. A module that must keep
         # importing a store for now is named here, with the reason, until it moves to the write
         # service.
         known_exceptions=frozenset()),
]


def _offences(rule: Rule) -> tuple[list[Import], set[tuple[str, str]]]:
    """The imports that break ``rule``, and the known exceptions that were used."""
    offences, excused = [], set()
    for module, imports in MODULES.items():
        if not rule.applies_to(module):
            continue
        for imp in imports:
            for forbidden in rule.forbidden:
                if within(imp.target, forbidden):
                    if (module, forbidden) in rule.known_exceptions:
                        excused.add((module, forbidden))
                    else:
                        offences.append(imp)
                    break
    return offences, excused


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_layer_rule(rule: Rule) -> None:
    offences, excused = _offences(rule)
    assert not offences, (f"{rule.name}: {rule.why}. Offending imports:\n  "
                          + "\n  ".join(str(o) for o in offences))
    stale = sorted(rule.known_exceptions - excused)
    assert not stale, (f"{rule.name}: these known exceptions no longer occur; remove them from the list: "
                       + ", ".join(f"{m} -> {f}" for m, f in stale))


def test_every_layer_is_found() -> None:
    """The scan sees the package: a rule over an empty layer would pass for nothing."""
    for layer in (SCIM, STORAGE, PROVISIONING, HTTP, REPORTS, CONSOLE):
        assert any(within(m, layer) and m != layer for m in MODULES), f"no modules found in {layer}"
    assert CLI in MODULES
    # relative imports resolve: http/errors.py says ``from ..storage.db import ...``
    assert any(i.target.startswith("scim_server.storage.db.") for i in MODULES["scim_server.http.errors"])


@pytest.mark.parametrize(("module", "is_package", "source", "expected"), [
    ("scim_server.http.admin", False, "from ..storage import audit", "scim_server.storage.audit"),
    ("scim_server.http.admin", False, "from .auth import require_token", "scim_server.http.auth.require_token"),
    ("scim_server.http.admin", False, "from .. import jsontext", "scim_server.jsontext"),
    ("scim_server.provisioning", True, "from .service import Provisioning",
     "scim_server.provisioning.service.Provisioning"),
    ("scim_server", True, "from .app import create_app", "scim_server.app.create_app"),
    ("scim_server.scim.filters", False, "import sqlalchemy.orm as orm", "sqlalchemy.orm"),
    ("scim_server.scim.filters", False, "def f():\n    from sqlalchemy import select", "sqlalchemy.select"),
])
def test_imports_are_resolved(module: str, is_package: bool, source: str, expected: str) -> None:
    assert [i.target for i in imports_in(source, module, is_package)] == [expected]


def test_a_relative_import_above_the_package_is_an_error() -> None:
    with pytest.raises(ValueError, match="beyond the top-level package"):
        imports_in("from ... import x", "scim_server.http", True)
