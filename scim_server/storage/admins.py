"""Console accounts, their sessions and the slow-down of failed sign-ins.

None of these functions commits: the caller's transaction decides.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .models import ConsoleAdmin, ConsoleSession, SignInFailure, Tenant, utcnow
from .passwords import hash_password, verify_password

#: a session lasts this long from sign-in (then the admin signs in again)
SESSION_LIFETIME = dt.timedelta(hours=8)
#: failed sign-ins for one e-mail address that cost nothing; each one after doubles the wait
FREE_FAILURES = 3
#: the shortest password an account may have
MIN_PASSWORD = 12
#: the longest wait between two sign-in attempts, in seconds (however many failures)
MAX_WAIT = 900
#: the longest e-mail address (the column's size)
MAX_EMAIL = 320


class AdminError(Exception):
    """An operator's mistake (unknown tenant, an e-mail already taken, a password too short): one line."""


@dataclass(frozen=True)
class SignedIn:
    admin: ConsoleAdmin
    csrf_token: str


def normalise_email(email: str) -> str:
    """The e-mail address as stored: without spaces around it, lower-case; one "@" with something
    on both sides, else AdminError."""
    folded = (email or "").strip().lower()
    local, at, domain = folded.partition("@")
    if not at or not local or not domain or "@" in domain:
        raise AdminError(f"not an e-mail address: {email!r} (one '@' with something on both sides)")
    if len(folded) > MAX_EMAIL:
        raise AdminError(f"an e-mail address has at most {MAX_EMAIL} characters, not {len(folded)}")
    return folded


def find_admin(session: Session, email: str) -> ConsoleAdmin | None:
    """The account of this e-mail address (any case, spaces around ignored), else None."""
    return session.scalar(select(ConsoleAdmin).where(ConsoleAdmin.email == email.strip().lower()))


def create_admin(session: Session, email: str, password: str, tenant_id: int | None) -> ConsoleAdmin:
    """A tenant admin (``tenant_id``) or an operator (None). The e-mail is stored lower-case and
    must be unique; the password (at least 12 characters) is stored as a scrypt hash."""
    address = normalise_email(email)
    if len(password or "") < MIN_PASSWORD:
        raise AdminError(f"a password needs at least {MIN_PASSWORD} characters")
    if tenant_id is not None and session.get(Tenant, tenant_id) is None:
        raise AdminError(f"no tenant with id {tenant_id}")
    if find_admin(session, address) is not None:
        raise AdminError(f"an account for {address} already exists")
    admin = ConsoleAdmin(email=address, tenant_id=tenant_id, password_hash=hash_password(password))
    session.add(admin)
    session.flush()
    return admin


def list_admins(session: Session) -> list[ConsoleAdmin]:
    """Every account, by e-mail address."""
    return list(session.scalars(select(ConsoleAdmin).order_by(ConsoleAdmin.email)))


def remove_admin(session: Session, email: str) -> bool:
    """Remove the account (its sessions go with it). False when there is none."""
    admin = find_admin(session, email)
    if admin is None:
        return False
    # explicitly, not left to ON DELETE CASCADE: a connection without foreign keys enforced
    # (SQLite's default) would keep sessions of an account that no longer exists
    session.execute(delete(ConsoleSession).where(ConsoleSession.admin_id == admin.id))
    session.delete(admin)
    session.flush()
    return True


#: a hash no password matches in practice, checked for unknown e-mail addresses (made on first use)
_dummy_hash: str | None = None


def _dummy() -> str:
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = hash_password(secrets.token_urlsafe(32))
    return _dummy_hash


def check_password(session: Session, email: str, password: str) -> ConsoleAdmin | None:
    """The admin when the e-mail and password match, else None. Takes as long for an unknown
    e-mail as for a wrong password (a hash is checked either way)."""
    admin = find_admin(session, email or "")
    if admin is None:
        verify_password(_dummy(), password or "")
        return None
    if not verify_password(admin.password_hash, password or ""):
        return None
    admin.last_sign_in = utcnow()
    session.flush()
    return admin


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def wait_before_sign_in(session: Session, email: str, now: dt.datetime) -> float:
    """Seconds this e-mail address must still wait before its next attempt (0: none)."""
    # columns, not the ORM object: a row the identity map holds may predate an upsert
    row = session.execute(select(SignInFailure.failures, SignInFailure.last_failure)
                          .where(SignInFailure.email == (email or "").strip().lower())).first()
    if row is None or row.failures <= FREE_FAILURES:
        return 0.0
    excess = row.failures - FREE_FAILURES
    wait = MAX_WAIT if excess >= 10 else min(2 ** excess, MAX_WAIT)  # 2 ** 10 is past the cap already
    elapsed = (_aware(now) - _aware(row.last_failure)).total_seconds()
    return max(0.0, wait - elapsed)


def record_failure(session: Session, email: str, now: dt.datetime) -> None:
    """One more failed sign-in for this e-mail address (known or not), at ``now``.

    One INSERT ... ON CONFLICT DO UPDATE (SQLite and PostgreSQL alike), so two workers
    counting a failure of the same address at once both count."""
    table = SignInFailure.__table__
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table).values(email=(email or "").strip().lower(), failures=1, last_failure=_aware(now))
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.email],
        set_={"failures": table.c.failures + 1, "last_failure": statement.excluded.last_failure})
    session.execute(statement)


def clear_failures(session: Session, email: str) -> None:
    session.execute(delete(SignInFailure).where(SignInFailure.email == (email or "").strip().lower()))


def _session_key(cookie_value: str) -> str:
    """The stored id of a session: the SHA-256 of the cookie (256 random bits: no salt needed)."""
    return hashlib.sha256(cookie_value.encode("utf-8", "surrogatepass")).hexdigest()


def start_session(session: Session, admin: ConsoleAdmin, now: dt.datetime) -> tuple[str, str]:
    """A new session: (the cookie value, random and shown only now; the session's CSRF token)."""
    if admin.id is None:
        session.flush()
    cookie_value = secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(32)
    now = _aware(now)
    # expired sessions are cleared here, at a sign-in (a write), not when a page finds one: pages
    # read in a read-only transaction
    session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))
    session.add(ConsoleSession(id_hash=_session_key(cookie_value), admin_id=admin.id, csrf_token=csrf_token,
                               created=now, expires_at=now + SESSION_LIFETIME))
    session.flush()
    return cookie_value, csrf_token


def find_session(session: Session, cookie_value: str, now: dt.datetime) -> SignedIn | None:
    """The signed-in admin of an unexpired session, else None."""
    if not cookie_value:
        return None
    row = session.get(ConsoleSession, _session_key(cookie_value))
    if row is None:
        return None
    if row.expires_at <= _aware(now):
        return None  # deleted by the next sign-in
    admin = session.get(ConsoleAdmin, row.admin_id)
    if admin is None:
        return None
    return SignedIn(admin=admin, csrf_token=row.csrf_token)


def end_session(session: Session, cookie_value: str) -> None:
    if cookie_value:
        session.execute(delete(ConsoleSession).where(ConsoleSession.id_hash == _session_key(cookie_value)))
