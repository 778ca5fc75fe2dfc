"""/healthz, /readyz and /metrics: liveness without the database, readiness that follows the
database and its migration, and Prometheus metrics labelled by route template (never by id or
tenant) that only loopback clients or holders of SCIM_METRICS_TOKEN may read. The last test
runs gunicorn with two workers in prometheus_client's multi-process mode."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from conftest import ERROR, assert_scim_error
from scim_server import create_app
from scim_server.config import Settings
from scim_server.http.metrics import count_rate_limited
from scim_server.storage.migrate import alembic_config
from scim_server.telemetry import count_audit_events, count_leaver_run

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _other_app(url: str, **settings):
    application = create_app(Settings.from_env(database_url=url, public_base_url=None, **settings))
    application.config["TESTING"] = True
    return application


def samples(body: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a Prometheus text exposition, by name and labels."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def sample(body: str, name: str, **labels) -> float:
    return samples(body).get((name, frozenset(labels.items())), 0.0)


def scrape(app) -> str:
    response = app.test_client().get("/metrics")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    return response.get_data(as_text=True)


# ------------------------------------------------------------------ /healthz and /readyz


def test_healthz_is_ok_without_a_database(tmp_path):
    dead = _other_app(f"sqlite:///{tmp_path}/no/such/folder/scim.db")
    try:
        response = dead.test_client().get("/healthz")
        assert response.status_code == 200
        assert response.get_json() == {"status": "ok"}
    finally:
        dead.extensions["scim_engine"].dispose()


def test_readyz_is_ready_on_the_migrated_database(app):
    response = app.test_client().get("/readyz")
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"status": "ready"}
    assert response.headers["Cache-Control"] == "no-store"


def test_readyz_is_503_while_the_schema_is_behind_the_newest_migration(app):
    config = alembic_config(app.config["SCIM"].database_url)
    script = ScriptDirectory.from_config(config)
    head = script.get_current_head()
    older = script.get_revision(head).down_revision
    assert older, "there is a migration before the head"
    engine = app.extensions["scim_engine"]
    with engine.begin() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": older})
    try:
        response = app.test_client().get("/readyz")
        assert response.status_code == 503
        body = response.get_json()
        assert body["status"] == "unavailable"
        assert body["reason"] == "database schema is not at the newest migration"
        assert body["database_revision"] == older
        assert body["expected_revision"] == head
        assert app.test_client().get("/healthz").status_code == 200  # alive all the same
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head})
    assert app.test_client().get("/readyz").status_code == 200


def test_readyz_is_503_on_a_database_never_migrated(tmp_path):
    fresh = _other_app(f"sqlite:///{tmp_path}/fresh.db")
    try:
        response = fresh.test_client().get("/readyz")
        assert response.status_code == 503
        assert response.get_json()["reason"] == "database not migrated"
        assert response.get_json()["database_revision"] is None
    finally:
        fresh.extensions["scim_engine"].dispose()


@pytest.mark.parametrize("kind", ["sqlite-missing-folder", "postgresql-closed-port"])
def test_readyz_is_503_when_the_database_cannot_be_reached(kind, tmp_path):
    url = (f"sqlite:///{tmp_path}/no/such/folder/scim.db" if kind.startswith("sqlite")
           else f"postgresql://postgres@127.0.0.1:{_free_port()}/scim_h3")
    dead = _other_app(url)
    try:
        client = dead.test_client()
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.get_json() == {"status": "unavailable", "reason": "database unavailable"}
        assert client.get("/healthz").status_code == 200
    finally:
        dead.extensions["scim_engine"].dispose()


# ------------------------------------------------------------------ /metrics


def test_requests_are_counted_by_route_template_method_and_status(app, api):
    before = scrape(app)
    user = api.create_user("metrics.person@example.dk", externalId="E-METRICS-1")
    path = f"/scim/v2/Users/{user['id']}"
    for _ in range(3):
        assert api.get(f"/Users/{user['id']}").status_code == 200
    assert api.get("/Users/does-not-exist").status_code == 404
    assert_scim_error(api.get("/Users?filter=nonsense+zz"), 400, "invalidFilter")
    assert api.get("/no/such/endpoint").status_code == 404
    after = scrape(app)

    def delta(name: str, **labels) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    one_user = "/scim/v2/Users/<resource_id>"
    assert delta("scim_http_requests_total", method="GET", route=one_user, status="200") == 3
    assert delta("scim_http_requests_total", method="GET", route=one_user, status="404") == 1
    assert delta("scim_http_requests_total", method="POST", route="/scim/v2/Users", status="201") == 1
    assert delta("scim_http_requests_total", method="GET", route="/scim/v2/Users", status="400") == 1
    assert delta("scim_http_requests_total", method="GET", route="<unmatched>", status="404") == 1
    assert delta("scim_http_request_duration_seconds_count", method="GET", route=one_user) == 4
    assert delta("scim_http_request_duration_seconds_bucket", method="GET", route=one_user, le="+Inf") == 4
    assert delta("scim_http_request_duration_seconds_sum", method="GET", route=one_user) > 0
    assert delta("scim_errors_total", status="400", scim_type="invalidFilter") == 1
    assert delta("scim_errors_total", status="404", scim_type="none") >= 2
    # no id, userName, externalId, raw path, tenant or token in any label or value
    for secret in (user["id"], "metrics.person", "E-METRICS-1", path, "acme", api.token, "does-not-exist", "nonsense"):
        assert secret not in after


def test_a_method_outside_http_is_one_label(app):
    before = scrape(app)
    app.test_client().open("/healthz", method="BREW")
    after = scrape(app)
    assert "BREW" not in after
    assert (sample(after, "scim_http_requests_total", method="OTHER", route="<unmatched>", status="405")
            - sample(before, "scim_http_requests_total", method="OTHER", route="<unmatched>", status="405")) == 1


def test_the_counting_hooks(app):
    before = scrape(app)
    count_rate_limited()
    count_rate_limited()
    count_audit_events(5)
    count_audit_events(0)
    count_leaver_run(users_changed=3)
    count_leaver_run()
    after = scrape(app)

    def delta(name: str) -> float:
        return sample(after, name) - sample(before, name)

    assert delta("scim_rate_limited_requests_total") == 2
    assert delta("scim_audit_events_written_total") == 5
    assert delta("scim_leaver_runs_total") == 2
    assert delta("scim_leaver_users_changed_total") == 3


def test_the_pool_gauge_follows_checked_out_connections(app):
    engine = app.extensions["scim_engine"]
    idle = sample(scrape(app), "scim_db_pool_checked_out_connections")
    assert sample(scrape(app), "scim_db_pool_size") >= 1
    first, second = engine.connect(), engine.connect()
    try:
        assert sample(scrape(app), "scim_db_pool_checked_out_connections") == idle + 2
    finally:
        first.close()
        second.close()
    assert sample(scrape(app), "scim_db_pool_checked_out_connections") == idle


def test_metrics_refuse_clients_off_the_loopback_interface(app):
    response = app.test_client().get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert response.status_code == 403
    assert response.get_json()["schemas"] == [ERROR]
    assert b"scim_http_requests" not in response.data
    # ... and loopback requests a proxy forwarded (the proxy is local, its client is not)
    assert app.test_client().get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 403
    assert app.test_client().get("/metrics", headers={"Forwarded": "for=203.0.113.9"}).status_code == 403
    assert app.test_client().get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    assert app.test_client().get("/metrics", environ_base={"REMOTE_ADDR": "::ffff:127.0.0.1"}).status_code == 200
    # a tenant's bearer token is no metrics token
    assert app.test_client().get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"},
                                 headers={"Authorization": "Bearer whatever"}).status_code == 403


def test_metrics_need_the_token_when_one_is_set(app):
    guarded = _other_app(app.config["SCIM"].database_url, metrics_token="s3cret-metrics-token")
    try:
        client = guarded.test_client()
        remote = {"REMOTE_ADDR": "10.1.2.3"}
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret-metrics-token"}):
            response = client.get("/metrics", environ_base=remote, headers=headers)
            assert response.status_code == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        # with a token set, loopback alone is not enough
        assert client.get("/metrics").status_code == 401
        response = client.get("/metrics", environ_base=remote,
                              headers={"Authorization": "Bearer s3cret-metrics-token"})
        assert response.status_code == 200
        assert b"scim_http_requests_total" in response.data
        assert b"s3cret" not in response.data
    finally:
        guarded.extensions["scim_engine"].dispose()


def test_the_metrics_token_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SCIM_METRICS_TOKEN", "from-env")
    assert Settings.from_env().metrics_token == "from-env"
    monkeypatch.setenv("SCIM_METRICS_TOKEN", "")
    assert Settings.from_env().metrics_token is None


# ------------------------------------------------------------------ gunicorn, several workers

_GUNICORN = """
import os, sys
from gunicorn.app.base import BaseApplication
from scim_server.http import metrics

class Server(BaseApplication):
    def __init__(self, options):
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from scim_server.app import create_app
        return create_app()

# what `serve` does before gunicorn forks its workers (scim_server/serving.py)
print(metrics.prepare_multiprocess_dir(), flush=True)
Server({"bind": sys.argv[1], "workers": 2, "worker_class": "sync", "accesslog": None,
        "control_socket_disable": True, "child_exit": metrics.child_exit}).run()
"""


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def test_gunicorn_workers_are_counted_together(app, tmp_path):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(SCIM_DATABASE_URL=app.config["SCIM"].database_url, PYTHONPATH=str(ROOT))
    server = subprocess.Popen([sys.executable, "-c", _GUNICORN, f"127.0.0.1:{port}"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    served = 0  # /healthz requests answered 200, as the client saw them

    def wait_until_up() -> None:
        nonlocal served
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status, _ = _get(base + "/healthz")
            if status == 200:
                served += 1
                return
            time.sleep(0.1)
        raise AssertionError("gunicorn did not start")

    def hit(n: int) -> None:
        nonlocal served
        with ThreadPoolExecutor(8) as pool:
            served += sum(status == 200 for status, _ in pool.map(lambda _: _get(base + "/healthz"), range(n)))

    try:
        directory = Path(server.stdout.readline().strip())
        assert directory.is_dir() and directory.name.startswith("scim-metrics-")
        assert oct(directory.stat().st_mode & 0o777) == "0o700"
        wait_until_up()
        hit(40)
        first_workers = _children(server.pid)
        assert len(first_workers) == 2
        for pid in first_workers:  # the workers die; their counts must not
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            workers = _children(server.pid)
            if len(workers) == 2 and not set(workers) & set(first_workers):
                break
            time.sleep(0.1)
        wait_until_up()
        hit(40)
        per_worker = app.extensions["scim_engine"].pool.size()
        deadline = time.monotonic() + 30
        while True:  # the second new worker may still be making its app
            status, body = _get(base + "/metrics")
            assert status == 200, body
            if sample(body, "scim_db_pool_size") >= 2 * per_worker or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert sample(body, "scim_http_requests_total", method="GET", route="/healthz", status="200") == served
        assert sample(body, "scim_http_request_duration_seconds_count", method="GET", route="/healthz") == served
        # live gauges add up over the two live workers only: child_exit dropped the dead ones'
        assert sample(body, "scim_db_pool_size") == 2 * per_worker
        assert _get(base + "/readyz")[0] == 200
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert not directory.exists(), "the metrics directory outlived the server"
