"""What a non-editable install and the Docker image depend on: the wheel carries schemas/ (as
scim_server/schemas) and the migrations, an installed wheel finds them and serves without the
source tree, and the Dockerfile keeps its production properties. (.ci/run also installs the wheel
into a fresh virtualenv with its dependencies and starts ``scim-server serve`` from it.)"""
from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from scim_server.scim import schemas

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
SCHEMA_FILES = sorted(p.name for p in (ROOT / "schemas").glob("*.json"))
MIGRATION_FILES = sorted(p.name for p in (ROOT / "scim_server" / "migrations" / "versions").glob("*.py"))


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        logical.append(current.strip())
        current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1] if " " in text else "") for text in logical]


def copied_sources() -> list[str]:
    """What the Dockerfile COPYs from the build context."""
    sources = []
    for instruction, args in dockerfile_instructions():
        if instruction == "COPY":
            words = [w for w in shlex.split(args) if not w.startswith("--")]
            sources += words[:-1]
    return sources


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built (as the image builds it) from exactly what the Dockerfile copies, so a
    file the package needs but the image leaves out fails here too."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    source.mkdir()
    for name in copied_sources():
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, source / name)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist"),
                             str(source)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    [built] = (work / "dist").glob("scim_server-*.whl")
    return built


def test_the_wheel_carries_the_schemas_and_the_migrations(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert SCHEMA_FILES, "schemas/ has the schema definitions"
    for name in SCHEMA_FILES:
        assert f"scim_server/schemas/{name}" in names
    for name in MIGRATION_FILES:
        assert f"scim_server/migrations/versions/{name}" in names
    assert "scim_server/migrations/env.py" in names
    assert "scim_server/migrations/script.py.mako" in names
    # nothing at the top of site-packages but the package (no stray ``schemas/``), no tests
    tops = {name.split("/", 1)[0] for name in names}
    assert tops == {"scim_server", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert re.search(r"^Requires-Dist: prometheus[_-]client>=0\.20", metadata, re.M | re.I)


def test_an_installed_wheel_finds_its_schemas_and_migrations_and_serves(wheel, tmp_path):
    """The wheel installed on its own (not editable, not beside the source tree) loads the
    schemas from inside the package, migrates a database and answers /readyz and discovery."""
    target = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                             str(wheel)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (target / "schemas").exists()
    program = """
import sys
from pathlib import Path
import scim_server
from scim_server import create_app
from scim_server.config import Settings
from scim_server.scim.schemas import default_schema_dir, registry
from scim_server.storage import tenants
from scim_server.storage.migrate import upgrade

target = Path(sys.argv[1]).resolve()
assert Path(scim_server.__file__).resolve().is_relative_to(target), scim_server.__file__
assert default_schema_dir() == target / "scim_server" / "schemas", default_schema_dir()
registry()
url = "sqlite:///" + sys.argv[2]
upgrade(url)
app = create_app(Settings.from_env(database_url=url))
with app.extensions["scim_sessions"].begin() as session:
    token = tenants.create_token(session, tenants.create_tenant(session, "wheel"), "test")
client = app.test_client()
assert client.get("/readyz").status_code == 200, client.get("/readyz").get_json()
response = client.get("/scim/v2/Schemas", headers={"Authorization": "Bearer " + token})
assert response.status_code == 200, response.get_data()
assert len(response.get_json()["Resources"]) >= 3
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if k not in ("SCIM_SCHEMA_DIR", "SCIM_DATABASE_URL")}
    env["PYTHONPATH"] = str(target)  # ahead of the editable install of the checkout
    result = subprocess.run([sys.executable, "-c", program, str(target), str(tmp_path / "wheel.db")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("ok")


def test_the_schema_directory_in_a_checkout_and_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(schemas.SCHEMA_DIR_ENV, raising=False)
    assert schemas.default_schema_dir() == ROOT / "schemas"
    monkeypatch.setenv(schemas.SCHEMA_DIR_ENV, str(tmp_path))
    assert schemas.default_schema_dir() == tmp_path


# ------------------------------------------------------------------ the Dockerfile


def test_the_base_image_is_pinned_to_a_patch_release():
    images = [args for instruction, args in dockerfile_instructions() if instruction == "FROM"]
    assert images, "the Dockerfile has a FROM"
    for image in images:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?( AS \w+)?", image, re.I), image


def test_dependencies_are_a_layer_of_their_own_before_the_code():
    steps = dockerfile_instructions()
    index = {i: (instruction, args) for i, (instruction, args) in enumerate(steps)}
    copy_pyproject = next(i for i, (ins, args) in index.items() if ins == "COPY" and "pyproject.toml" in args)
    copy_code = next(i for i, (ins, args) in index.items() if ins == "COPY" and "scim_server" in args.split())
    installs = [i for i, (ins, args) in index.items() if ins == "RUN" and "pip install" in args]
    # the copy of pyproject.toml carries nothing else that changes with the code
    assert shlex.split(steps[copy_pyproject][1])[:-1] == ["pyproject.toml"]
    assert any(copy_pyproject < i < copy_code for i in installs), "dependencies are installed before the code is copied"
    code_installs = [steps[i][1] for i in installs if i > copy_code]
    assert code_installs and all("--no-deps" in args for args in code_installs)


def test_the_install_is_not_editable_and_the_code_not_the_users():
    for instruction, args in dockerfile_instructions():
        if instruction == "RUN" and "pip install" in args:
            words = shlex.split(args)
            assert "-e" not in words and "--editable" not in words and not any(w.startswith("--editable=") for w in words)
        if instruction == "RUN":
            assert "chown -R" not in args, "the code belongs to root, not to the runtime user"
    users = [args for instruction, args in dockerfile_instructions() if instruction == "USER"]
    assert users, "the image switches to a non-root user"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # the switch comes after every install: the code is installed as root
    steps = dockerfile_instructions()
    last_user = max(i for i, (ins, _) in enumerate(steps) if ins == "USER")
    assert all(i < last_user for i, (ins, args) in enumerate(steps) if ins == "RUN")


def test_the_health_check_asks_readyz_with_python():
    checks = [args for instruction, args in dockerfile_instructions() if instruction == "HEALTHCHECK"]
    assert len(checks) == 1
    assert "/readyz" in checks[0]
    assert "urllib" in checks[0] and "curl" not in checks[0] and "wget" not in checks[0]
    assert "CMD" in checks[0] and "--timeout=" in checks[0]


def test_the_build_context_leaves_out_caches_and_keeps_what_the_image_copies():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for needed in (".venv", ".git", "**/__pycache__", "**/*.pyc", ".pytest_cache", ".ruff_cache", "**/*.db"):
        assert needed in patterns, needed
    for source in copied_sources():
        assert not any(fnmatch.fnmatch(source, p) or source == p.rstrip("/") for p in patterns), source
        assert (ROOT / source).exists(), source
