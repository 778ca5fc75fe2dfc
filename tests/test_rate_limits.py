"""Per-tenant rate limits (scim_server/http/ratelimit.py).

Every test installs a limiter with a clock of its own (no sleeping) and the server-wide defaults
it needs; the suite's app has no default limit (conftest). Tenants change their limit with
``scim-server tenant rate-limit``, read with the token on every request here (no token cache).
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap

import pytest
from sqlalchemy import event

from conftest import CORE_USER, access_token, assert_scim_error, bearer, make_client
from scim_server.http import ratelimit
from scim_server.http.ratelimit import ENV_FILE, EXTENSION, Limit, Limits, RateLimiter, limits_for, local_table
from scim_server.storage import tenants

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(app, monkeypatch) -> Clock:
    """A fresh in-process table whose clock moves only when a test says so."""
    fake = Clock()
    monkeypatch.setitem(app.extensions, EXTENSION, RateLimiter(local_table(), fake))
    return fake


@pytest.fixture
def defaults(app, monkeypatch, clock):
    """Set the server-wide defaults (SCIM_RATE_LIMIT_*) for this test."""
    def set_defaults(per_second=10, burst=5, token_percent=100, **other):
        settings = dataclasses.replace(app.config["SCIM"], rate_limit_per_second=per_second, rate_limit_burst=burst,
                                       rate_limit_token_percent=token_percent, **other)
        monkeypatch.setitem(app.config, "SCIM", settings)
    return set_defaults


def statuses(api, n: int, path: str = "/Users?count=1") -> list[int]:
    return [api.get(path).status_code for _ in range(n)]


def second_token(app, tenant_name: str = "acme"):
    with app.extensions["scim_sessions"].begin() as session:
        return bearer(app, tenants.create_token(session, tenants.get_tenant(session, tenant_name), "second"))


def set_tenant_setting(app, tenant_name: str, value) -> None:
    with app.extensions["scim_sessions"].begin() as session:
        tenant = tenants.get_tenant(session, tenant_name)
        tenant.settings = {**(tenant.settings or {}), "rate_limit": value}


# ------------------------------------------------------------------ 429


def test_over_the_limit_is_429_with_retry_after_and_a_scim_error(api, defaults, clock):
    defaults(per_second=10, burst=5)
    assert statuses(api, 5) == [200] * 5
    refused = api.get("/Users?count=1")
    body = assert_scim_error(refused, 429)
    assert refused.headers["Retry-After"] == "1"  # 0.1 s to the next token, in whole seconds
    assert "10 requests per second" in body["detail"]
    assert "scimType" not in body
    clock.advance(0.1)  # one token back
    assert statuses(api, 2) == [200, 429]
    clock.advance(60)  # never more than the burst
    assert statuses(api, 6) == [200] * 5 + [429]


def test_retry_after_counts_whole_seconds_to_the_next_token(app, api, defaults, clock):
    defaults()
    set_tenant_setting(app, "acme", {"per_second": 0.25, "burst": 1})
    assert statuses(api, 1) == [200]
    refused = api.get("/Users?count=1")
    assert_scim_error(refused, 429)
    assert refused.headers["Retry-After"] == "4"
    clock.advance(2.5)
    assert api.get("/Users?count=1").headers["Retry-After"] == "2"  # 1.5 s left, rounded up
    clock.advance(1.5)
    assert statuses(api, 1) == [200]


def test_every_authenticated_endpoint_and_method_is_counted(api, defaults, clock):
    defaults(per_second=10, burst=3)
    assert api.post("/Users", json={"schemas": [CORE_USER], "userName": "a@acme.dk"}).status_code == 201
    assert api.get("/ServiceProviderConfig").status_code == 200
    assert api.get("/Users?count=1").status_code == 200
    assert_scim_error(api.post("/Users", json={"schemas": [CORE_USER], "userName": "b@acme.dk"}), 429)
    assert_scim_error(api.get("/ServiceProviderConfig"), 429)
    clock.advance(1)
    assert api.get("/Users?filter=userName+eq+%22b@acme.dk%22").get_json()["totalResults"] == 0  # not created


def test_a_request_is_counted_once(api, defaults):
    """The root /.search opens a store per resource type, authenticating each time: still one request."""
    defaults(per_second=10, burst=2)
    for _ in range(2):
        assert api.post("/.search", json={"schemas": [SEARCH], "count": 1}).status_code == 200
    assert_scim_error(api.post("/.search", json={"schemas": [SEARCH], "count": 1}), 429)


def test_unauthenticated_requests_are_401_not_counted(api, anonymous, defaults):
    defaults(per_second=10, burst=1)
    for _ in range(3):
        assert_scim_error(anonymous.get("/Users"), 401)
    assert statuses(api, 2) == [200, 429]


def test_refused_before_any_database_work(app, api, defaults):
    """With the token in the token cache (as in production), a refused request runs no SQL at all."""
    defaults(per_second=10, burst=2, token_cache_seconds=60)
    seen: list[str] = []
    engines = {id(e): e for e in (app.extensions["scim_engine"], app.extensions["scim_read_engine"])}.values()

    def record(conn, cursor, statement, *args):
        seen.append(statement)
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        assert statuses(api, 2) == [200, 200]
        assert seen, "the listener sees the requests' statements"
        seen.clear()
        assert_scim_error(api.get("/Users?count=1"), 429)
        assert_scim_error(api.patch("/Users/whoever", json={}), 429)
        assert seen == []
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


def test_rate_limited_requests_are_counted_in_the_metrics(api, defaults, monkeypatch):
    counted = []
    monkeypatch.setattr(ratelimit, "_metric", [lambda: counted.append(1)])
    defaults(per_second=10, burst=1)
    assert statuses(api, 3) == [200, 429, 429]
    assert counted == [1, 1]


# ------------------------------------------------------------------ isolation and shares


def test_another_tenant_is_not_affected(api, other_api, defaults, clock):
    defaults(per_second=10, burst=5)
    assert statuses(api, 8) == [200] * 5 + [429] * 3
    assert statuses(other_api, 5) == [200] * 5
    assert_scim_error(api.get("/Users"), 429)


def test_one_token_may_use_its_share_of_the_tenant(app, api, defaults, clock):
    defaults(per_second=10, burst=10, token_percent=50)
    second = second_token(app)
    third = second_token(app)
    assert statuses(api, 6) == [200] * 5 + [429]  # half the burst
    assert statuses(second, 6) == [200] * 5 + [429]  # the other half
    assert statuses(third, 1) == [429]  # the tenant's bucket is empty
    refused = third.get("/Users")
    assert refused.headers["Retry-After"] == "1"
    clock.advance(1)  # 10 tokens for the tenant, 5 for each caller
    assert statuses(api, 6) == [200] * 5 + [429]
    assert statuses(third, 6) == [200] * 5 + [429]


def test_an_oauth_clients_tokens_share_one_callers_limit(app, defaults):
    defaults(per_second=10, burst=10, token_percent=50)
    client_id, secret = make_client(app, "acme")
    first = bearer(app, access_token(app, client_id, secret))
    second = bearer(app, access_token(app, client_id, secret))
    assert statuses(first, 3) == [200] * 3
    assert statuses(second, 3) == [200, 200, 429]  # the client's 5, across its tokens


# ------------------------------------------------------------------ the tenant's setting


def test_the_tenant_setting_changes_the_limit(app, api, other_api, cli, defaults, clock):
    defaults(per_second=10, burst=5)
    out = cli("tenant", "rate-limit", "acme", "--per-second", "2", "--burst", "3")
    assert out.exit_code == 0, out.output
    assert '"per_second": 2' in out.output and '"burst": 3' in out.output
    assert statuses(api, 4) == [200] * 3 + [429]
    assert statuses(other_api, 5) == [200] * 5  # the default for the others
    clock.advance(1)  # 2 per second
    assert statuses(api, 3) == [200, 200, 429]

    assert cli("tenant", "rate-limit", "acme", "--burst", "20").exit_code == 0  # keeps --per-second
    with app.extensions["scim_sessions"]() as session:
        assert tenants.get_tenant(session, "acme").settings["rate_limit"] == {"per_second": 2, "burst": 20}
    clock.advance(10)
    assert statuses(api, 21) == [200] * 20 + [429]

    assert cli("tenant", "rate-limit", "acme", "--default").exit_code == 0
    with app.extensions["scim_sessions"]() as session:
        assert "rate_limit" not in tenants.get_tenant(session, "acme").settings
    clock.advance(10)
    assert statuses(api, 6) == [200] * 5 + [429]


def test_a_tenant_without_limit(app, api, cli, defaults):
    defaults(per_second=1, burst=1)
    assert cli("tenant", "rate-limit", "acme", "--off").exit_code == 0
    assert statuses(api, 30) == [200] * 30
    set_tenant_setting(app, "acme", 0)
    assert statuses(api, 10) == [200] * 10
    assert cli("tenant", "rate-limit", "acme", "--per-second", "5").exit_code == 0  # burst 2 x 5
    assert statuses(api, 11) == [200] * 10 + [429]
    assert cli("tenant", "rate-limit", "acme", "--per-second", "0").exit_code == 0
    assert statuses(api, 20) == [200] * 20


def test_no_default_limit_but_the_tenants_own(app, api, other_api, defaults):
    defaults(per_second=0)
    assert statuses(api, 30) == [200] * 30
    set_tenant_setting(app, "acme", {"per_second": 3, "burst": 3})
    assert statuses(api, 4) == [200] * 3 + [429]
    assert statuses(other_api, 30) == [200] * 30


def test_the_rate_limit_command_checks_its_options(cli, api):
    assert cli("tenant", "rate-limit", "acme", "--off", "--per-second", "3").exit_code == 2
    assert cli("tenant", "rate-limit", "acme", "--burst", "0").exit_code == 2
    assert cli("tenant", "rate-limit", "acme", "--token-percent", "101").exit_code == 2
    unknown = cli("tenant", "rate-limit", "no-such-tenant", "--off")
    assert unknown.exit_code == 1 and "Traceback" not in unknown.output
    shown = cli("tenant", "rate-limit", "acme")
    assert shown.exit_code == 0 and "default" in shown.output


@dataclasses.dataclass(frozen=True)
class _Defaults:
    rate_limit_per_second: float = 200
    rate_limit_burst: float = 400
    rate_limit_token_percent: float = 50


@pytest.mark.parametrize("setting, expected", [
    (None, Limits(Limit(200, 400), Limit(100, 200))),
    ({}, Limits(Limit(200, 400), Limit(100, 200))),
    ("off", None),
    (0, None),
    (False, None),
    ({"per_second": 0}, None),
    ({"per_second": 50}, Limits(Limit(50, 100), Limit(25, 50))),
    ({"per_second": 50, "burst": 10, "token_percent": 100}, Limits(Limit(50, 10), None)),
    ({"burst": 1000}, Limits(Limit(200, 1000), Limit(100, 500))),
    ({"per_second": "fast", "burst": None}, Limits(Limit(200, 400), Limit(100, 200))),  # nonsense: defaults
    (25, Limits(Limit(25, 50), Limit(12.5, 25))),
    ({"per_second": 0.5, "burst": 0, "token_percent": 10}, Limits(Limit(0.5, 1), Limit(0.05, 1))),
])
def test_limits_from_the_settings(setting, expected):
    tenant_settings = {} if setting is None else {"rate_limit": setting}
    assert limits_for(_Defaults(), tenant_settings) == expected


# ------------------------------------------------------------------ the table


def test_the_table_keeps_working_when_full():
    """More callers than slots: the stalest slot of a key's probe is taken over (its caller
    starts again with a full bucket), and a key still in the table keeps its count."""
    clock = Clock()
    limiter = RateLimiter(local_table(slots=16), clock)
    tight = Limits(Limit(1, 2), None)
    assert [limiter.acquire(1, "x", tight) for _ in range(3)][:2] == [0.0, 0.0]
    for tenant_id in range(2, 200):
        clock.advance(0.0001)
        assert limiter.acquire(tenant_id, "x", tight) == 0.0
    assert limiter.acquire(200, "x", tight) == 0.0
    assert limiter.acquire(200, "x", tight) == 0.0
    assert limiter.acquire(200, "x", tight) == 1.0


_TAKER = textwrap.dedent("""
    import sys
    from scim_server.http.ratelimit import Limit, Limits, RateLimiter, shared_table
    limiter = RateLimiter(shared_table(sys.argv[1]), clock=lambda: 1000.0)  # no refill: only takes
    limits = Limits(Limit(1.0, 1000.0), Limit(1.0, 1000.0))
    print("ready", flush=True)
    sys.stdin.readline()
    print(sum(1 for _ in range(int(sys.argv[2])) if limiter.acquire(7, "same caller", limits) == 0.0), flush=True)
""")


def test_the_shared_table_counts_across_processes(tmp_path):
    """Two processes take from the same buckets in one file (created by whichever comes first):
    together they get exactly the burst, no token twice."""
    path = str(tmp_path / "buckets")
    procs = [subprocess.Popen([sys.executable, "-c", _TAKER, path, "3000"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        granted = [int(p.communicate(timeout=60)[0]) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert sum(granted) == 1000, granted
    assert os.path.getsize(path) == ratelimit.TABLE_BYTES


def test_prepare_shared_table_names_a_fresh_file(monkeypatch):
    monkeypatch.delenv(ENV_FILE, raising=False)
    env = ratelimit.prepare_shared_table()
    path = env[ENV_FILE]
    assert os.path.getsize(path) == ratelimit.TABLE_BYTES
    monkeypatch.setenv(ENV_FILE, path)
    assert ratelimit.prepare_shared_table() == {}  # already configured: kept


def test_workers_use_the_file_the_environment_names(app, api, defaults, monkeypatch, tmp_path):
    defaults(per_second=1, burst=2)
    monkeypatch.setenv(ENV_FILE, str(tmp_path / "buckets"))
    monkeypatch.delitem(app.extensions, EXTENSION)
    try:
        assert statuses(api, 3) == [200, 200, 429]
        limiter = app.extensions[EXTENSION]
        assert limiter.table.lock_fd is not None
        # another process's view of the same file: the tenant's bucket is empty there too
        other = RateLimiter(ratelimit.shared_table(str(tmp_path / "buckets")), limiter.clock)
        with app.extensions["scim_sessions"]() as session:
            tenant_id = tenants.get_tenant(session, "acme").id
        assert other.acquire(tenant_id, "someone else", Limits(Limit(1, 2), None)) > 0
    finally:
        found = app.extensions.pop(EXTENSION, None)
        if found is not None and found.table.lock_fd is not None:
            found.table.buffer.close()
            os.close(found.table.lock_fd)
