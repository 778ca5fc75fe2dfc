"""The application factory."""
from __future__ import annotations

from flask import Flask

from . import console
from .config import Settings
from .http import admin, bulk, context, discovery, errors, health, metrics, oauth, reports, requestlog, resources, sync
from .scim.schemas import registry
from .storage.db import make_engine, make_read_session_factory, make_session_factory, read_engine


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__, static_folder=None)
    app.config["SCIM"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    engine = make_engine(settings.database_url)
    app.extensions["scim_engine"] = engine
    app.extensions["scim_sessions"] = make_session_factory(engine)
    app.extensions["scim_read_engine"] = reader = read_engine(engine)
    app.extensions["scim_read_sessions"] = make_read_session_factory(reader)
    registry()  # load and check the schema files at start-up, not on the first request
    requestlog.configure_logging()
    errors.register(app)
    context.register(app)
    requestlog.register(app)
    app.register_blueprint(resources.bp, url_prefix=settings.base_path)
    app.register_blueprint(bulk.bp, url_prefix=settings.base_path)
    app.register_blueprint(discovery.bp, url_prefix=settings.base_path)
    app.register_blueprint(admin.bp)
    app.register_blueprint(sync.bp)
    app.register_blueprint(reports.bp)
    oauth.init_app(app)
    health.init_app(app)  # /healthz, /readyz
    metrics.init_app(app)  # /metrics, and every request counted
    console.init_app(app)  # /console/
    return app
