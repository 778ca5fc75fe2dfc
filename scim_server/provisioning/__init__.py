"""The write service: every write of a SCIM resource, whoever asks for it.

A view, a Bulk operation, a file sync and the CLI all call ``Provisioning``; it runs the
one write sequence (find, If-Match, IdP quirks, PATCH engine, validation, immutables,
store write, master-data rules, audit) and owns the transaction boundary. ``bulk``
builds RFC 7644 Bulk requests on it.
"""
from .service import Provisioning, Written

__all__ = ["Provisioning", "Written"]
