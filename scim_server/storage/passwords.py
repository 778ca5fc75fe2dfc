"""Passwords that IdPs send (Okta sends one on create even without password sync).

Stored only as a salted hash, never returned (``returned: never`` in the schema).
Werkzeug, which Flask already brings, does the hashing.
"""
from __future__ import annotations

from werkzeug.security import check_password_hash, generate_password_hash


def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def verify_password(password_hash: str, password: str) -> bool:
    return check_password_hash(password_hash, password)
