"""Running the app under gunicorn from the ``serve`` command (no separate config file).

The app is created in each worker after the fork, so no database connection
is shared between processes.
"""
from __future__ import annotations

import os
import re

from gunicorn.app.base import BaseApplication

from . import telemetry
from .http.ratelimit import prepare_shared_table


class _Server(BaseApplication):
    def __init__(self, options: dict):
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings:  # an older gunicorn may lack a setting (control_socket: 25.1)
                self.cfg.set(key, value)

    def load(self):
        from .app import create_app
        return create_app()


def run_gunicorn(host: str, port: int, workers: int, threads: int) -> None:
    # set up before the workers fork, so that all of them share it: the metrics' directory
    # (prometheus_client's multi-process mode) and the rate limits' table
    telemetry.prepare_multiprocess_dir()
    os.environ.update(prepare_shared_table())
    _Server({
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "accesslog": None,
        "keepalive": 75,
        "timeout": 120,
        "graceful_timeout": 30,
        "control_socket": control_socket_path(host, port),
        "child_exit": telemetry.child_exit,  # a dead worker's live gauges leave /metrics
    }).run()


def control_socket_path(host: str, port: int) -> str:
    """gunicorn's control socket (for ``gunicornc``), one per server: named after the address it
    serves, in gunicorn's own folder ($XDG_RUNTIME_DIR, else ~/.gunicorn).

    gunicorn's default is one fixed path per user, so a second server on the machine took over
    the first one's socket, and deleted it when it stopped. Two servers never share an address,
    so they never share this path either.
    """
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    folder = runtime if runtime and os.path.isdir(runtime) else os.path.join(os.path.expanduser("~"), ".gunicorn")
    address = re.sub(r"[^A-Za-z0-9.-]+", "_", f"{host}_{port}")
    return os.path.join(folder, f"scim-server-{address}.ctl")
