"""plan2learn's SCIM 2.0 provisioning server (RFC 7643, RFC 7644).

``create_app`` is imported when it is first asked for, not with the package: a command of
``scim-server`` that needs no web application (a sync, a tenant, a token) starts without
loading Flask's blueprints, the console and their templates (0.4 s of a nightly sync's start).
"""
from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
