"""The admin console at ``/console/``: pages rendered on the server for customers' admins and
plan2learn's operators (Flask views, Jinja templates, one small script for lazy trees).

Layer: beside ``http`` at the top. Views read through ``reports`` and the stores, change
credentials through ``storage.tenants``/``storage.clients``, and never import SQLAlchemy.
"""
from __future__ import annotations

from flask import Flask

from . import i18n
from .blueprint import bp, render_error


def init_app(app: Flask) -> None:
    from . import access, logs, organisation, overview, people, quality, signin  # noqa: F401  (routes)

    i18n.init_app(app)
    app.register_blueprint(bp)
    app.extensions["console_error_page"] = render_error
