"""plan2learn's SCIM 2.0 provisioning server (RFC 7643, RFC 7644)."""
from .app import create_app

__all__ = ["create_app"]
