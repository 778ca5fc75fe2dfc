"""The OAuth 2.0 authorization server, built from authlib's parts.

* ``POST /oauth/token``: client credentials grant (RFC 6749 §4.4); clients
  authenticate with client_secret_basic, client_secret_post, or private_key_jwt
  (RFC 7523) when they registered a public JWKS.
* ``POST /oauth/introspect`` (RFC 7662) and ``POST /oauth/revoke`` (RFC 7009):
  an authenticated client sees and revokes only its own tokens.
* ``GET /.well-known/oauth-authorization-server`` (RFC 8414).

Access tokens are opaque, short-lived (``SCIM_ACCESS_TOKEN_SECONDS``), bound to
the client's tenant and granted scopes, and stored as hashes like every token.
This module adapts our rows to authlib's interfaces; it parses no token and
checks no credential itself.
"""
from __future__ import annotations

import datetime as dt
import secrets

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, InvalidClientError, InvalidScopeError, TokenMixin, grants
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Blueprint, current_app, g, jsonify, request
from joserfc.jwk import KeySet

from ..storage import audit, clients
from ..storage.models import BearerToken, OAuthClient, utcnow

AUTH_METHODS = [*clients.SECRET_METHODS, clients.KEY_METHOD]
bp = Blueprint("oauth", __name__)


def issuer() -> str:
    settings = current_app.config["SCIM"]
    if settings.public_base_url:
        from urllib.parse import urlsplit
        parts = urlsplit(settings.public_base_url)
        return f"{parts.scheme}://{parts.netloc}"
    return request.host_url.rstrip("/")


class Client(ClientMixin):
    """An OAuthClient row as authlib sees a client."""

    def __init__(self, row: OAuthClient):
        self.row = row
        self.client_id = row.client_id

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self):
        return None

    def check_redirect_uri(self, redirect_uri) -> bool:
        return False

    def check_response_type(self, response_type) -> bool:
        return False

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = self.row.scope.split()
        if not scope:
            return self.row.scope
        return " ".join(s for s in scope.split() if s in allowed)

    def check_client_secret(self, client_secret: str) -> bool:
        return clients.secret_matches(self.row, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.row.auth_method == clients.KEY_METHOD:
            return method == clients.KEY_METHOD
        return method in clients.SECRET_METHODS

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


class Token(TokenMixin):
    def __init__(self, row: BearerToken):
        self.row = row

    def check_client(self, client: Client) -> bool:
        return self.row.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.row.scope

    def get_expires_in(self) -> int:
        if self.row.expires_at is None:
            return 0
        return max(0, int((self.row.expires_at - utcnow()).total_seconds()))

    def is_expired(self) -> bool:
        return self.row.expires_at is not None and self.row.expires_at <= utcnow()

    def is_revoked(self) -> bool:
        return self.row.revoked_at is not None


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def validate_requested_scope(self) -> None:
        """A requested scope the client does not hold is ``invalid_scope`` (RFC 6749 §5.2:
        it "exceeds the scope granted"), not a token with fewer scopes or none; a request
        without ``scope`` gets all the client's."""
        super().validate_requested_scope()  # scopes this server does not know
        held = set(self.request.client.row.scope.split())
        missing = [s for s in (self.request.payload.scope or "").split() if s not in held]
        if missing:
            raise InvalidScopeError(description=f"The client does not hold the scope(s) {' '.join(missing)}")


class PrivateKeyJWT(JWTBearerClientAssertion):
    """private_key_jwt (RFC 7523 §2.2): a client assertion signed with the client's registered key."""

    CLIENT_AUTH_METHOD = clients.KEY_METHOD

    def get_audiences(self) -> list[str]:
        return [issuer() + "/oauth/token", issuer(), issuer() + "/"]

    def resolve_client_public_key(self, client: Client):
        if not (client.row.jwks or {}).get("keys"):
            raise InvalidClientError(description="The client has registered no public key")
        return KeySet.import_key_set(client.row.jwks)

    def validate_jti(self, claims, jti: str) -> bool:
        expires = dt.datetime.fromtimestamp(int(claims.get("exp", 0)), dt.UTC)
        return clients.use_assertion(g.db, client_id=claims["sub"], jti=jti, expires_at=expires)


class _OwnTokenMixin:
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None):
        row = clients.find_any_token(g.db, token_string)
        return Token(row) if row is not None else None

    def check_permission(self, token: Token, client: Client, request) -> bool:
        return token.check_client(client)


class Introspection(_OwnTokenMixin, IntrospectionEndpoint):
    def authenticate_token(self, request, client):
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        return token if token and token.check_client(client) else None

    def introspect_token(self, token: Token) -> dict:
        row = token.row
        return {"active": True, "client_id": row.client_id, "scope": row.scope, "token_type": "Bearer",
                "exp": int(row.expires_at.timestamp()) if row.expires_at else None,
                "iat": int(row.created.timestamp()), "iss": issuer(), "sub": row.client_id}


class Revocation(_OwnTokenMixin, RevocationEndpoint):
    def authenticate_token(self, request, client):
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        return token if token and token.check_client(client) else None

    def revoke_token(self, token: Token, request) -> None:
        clients.revoke_token(g.db, token.row)


def _query_client(client_id: str):
    row = clients.find_client(g.db, client_id)
    return Client(row) if row is not None else None


def _save_token(token: dict, request) -> None:
    client: Client = request.client
    clients.save_access_token(g.db, client.row, token["access_token"], token.get("scope") or "",
                              int(token["expires_in"]))


def _server() -> AuthorizationServer:
    return current_app.extensions["oauth_server"]


def init_app(app) -> None:
    server = AuthorizationServer()
    app.extensions["oauth_server"] = server
    server.init_app(app, query_client=_query_client, save_token=_save_token)
    expires = app.config["SCIM"].access_token_seconds
    server.register_token_generator("default", BearerTokenGenerator(
        access_token_generator=lambda **_: secrets.token_urlsafe(32),
        expires_generator=lambda client, grant_type: expires))
    server.register_grant(ClientCredentialsGrant)
    server.register_client_auth_method(PrivateKeyJWT.CLIENT_AUTH_METHOD, PrivateKeyJWT())
    server.register_endpoint(Introspection)
    server.register_endpoint(Revocation)
    server.scopes_supported = list(clients.SCOPES)
    app.register_blueprint(bp)


def _committed(response):
    if response.status_code == 200:
        g.db.commit()
    return response


@bp.post("/oauth/token")
def token():
    audit.current.set(audit.Actor("oauth", g.get("request_id")))
    return _committed(_server().create_token_response())


@bp.post("/oauth/introspect")
def introspect():
    return _committed(_server().create_endpoint_response(Introspection.ENDPOINT_NAME))


@bp.post("/oauth/revoke")
def revoke():
    return _committed(_server().create_endpoint_response(Revocation.ENDPOINT_NAME))


@bp.get("/.well-known/oauth-authorization-server")
def metadata():
    base = issuer()
    return jsonify({
        "issuer": base,
        "token_endpoint": base + "/oauth/token",
        "introspection_endpoint": base + "/oauth/introspect",
        "revocation_endpoint": base + "/oauth/revoke",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256", "PS256"],
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "scopes_supported": list(clients.SCOPES),
        "response_types_supported": [],
    })
