"""Console accounts, their sessions and the slow-down of failed sign-ins.

(contract; implementation to come)
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from .models import ConsoleAdmin

#: a session lasts this long from sign-in (then the admin signs in again)
SESSION_LIFETIME = dt.timedelta(hours=8)
#: failed sign-ins for one e-mail address that cost nothing; each one after doubles the wait
FREE_FAILURES = 3


class AdminError(Exception):
    """An operator's mistake (unknown tenant, an e-mail already taken, a password too short): one line."""


@dataclass(frozen=True)
class SignedIn:
    admin: ConsoleAdmin
    csrf_token: str


def create_admin(session: Session, email: str, password: str, tenant_id: int | None) -> ConsoleAdmin:
    """A tenant admin (``tenant_id``) or an operator (None). The e-mail is stored lower-case and
    must be unique; the password (at least 12 characters) is stored as a scrypt hash."""
    raise NotImplementedError


def list_admins(session: Session) -> list[ConsoleAdmin]:
    raise NotImplementedError


def remove_admin(session: Session, email: str) -> bool:
    """Remove the account (its sessions go with it). False when there is none."""
    raise NotImplementedError


def check_password(session: Session, email: str, password: str) -> ConsoleAdmin | None:
    """The admin when the e-mail and password match, else None. Takes as long for an unknown
    e-mail as for a wrong password (a hash is checked either way)."""
    raise NotImplementedError


def wait_before_sign_in(session: Session, email: str, now: dt.datetime) -> float:
    """Seconds this e-mail address must still wait before its next attempt (0: none)."""
    raise NotImplementedError


def record_failure(session: Session, email: str, now: dt.datetime) -> None:
    raise NotImplementedError


def clear_failures(session: Session, email: str) -> None:
    raise NotImplementedError


def start_session(session: Session, admin: ConsoleAdmin, now: dt.datetime) -> tuple[str, str]:
    """A new session: (the cookie value, random and shown only now; the session's CSRF token)."""
    raise NotImplementedError


def find_session(session: Session, cookie_value: str, now: dt.datetime) -> SignedIn | None:
    """The signed-in admin of an unexpired session, else None."""
    raise NotImplementedError


def end_session(session: Session, cookie_value: str) -> None:
    raise NotImplementedError
