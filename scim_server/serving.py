"""Running the app under gunicorn from the ``serve`` command (no separate config file).

The app is created in each worker after the fork, so no database connection
is shared between processes.
"""
from __future__ import annotations

from gunicorn.app.base import BaseApplication


class _Server(BaseApplication):
    def __init__(self, options: dict):
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from .app import create_app
        return create_app()


def run_gunicorn(host: str, port: int, workers: int, threads: int) -> None:
    _Server({
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "accesslog": None,
        "keepalive": 75,
        "timeout": 120,
        "graceful_timeout": 30,
    }).run()
