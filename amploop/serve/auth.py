"""API keys with roles: made once, kept in the store as a hash, checked on every request.

A key reads ``amp_<id>_<secret>``: the id (12 hex characters) is public and names the key in
``amploop keys list`` and the audit log; the secret is shown once, when the key is made, and the
store keeps only its SHA-256. Two roles, ``reader`` < ``operator``: a reader may predict (when
prediction needs a key) and read; an operator may also send feedback and use the admin routes.

This module knows no web framework: the HTTP app reads the headers with
:func:`token_from_headers`, checks the key with a :class:`KeyVerifier` and the role with
:func:`require_role`, and turns :class:`~amploop.errors.AuthError` (401) and
:class:`~amploop.errors.PermissionDenied` (403) into answers. No message here ever holds a
token or a secret.

Examples
--------
>>> token_from_headers("Bearer amp_0123456789ab_s3cret", None)
'amp_0123456789ab_s3cret'
>>> token_from_headers(None, " amp_0123456789ab_s3cret ")
'amp_0123456789ab_s3cret'
>>> token_from_headers(None, None) is None
True
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from amploop.errors import AuthError, PermissionDenied, UsageError, close_matches

if TYPE_CHECKING:
    from amploop.registry.records import ApiKeyRecord
    from amploop.registry.store import Store

__all__ = [
    "ROLES",
    "CreatedKey",
    "KeyVerifier",
    "authenticate",
    "create_api_key",
    "key_id_of",
    "require_role",
    "token_from_headers",
]

ROLES = ("reader", "operator")  # each role may do what the ones before it may
TOKEN_PREFIX = "amp_"
ID_HEX_CHARS = 12  # secrets.token_hex(6): the public part, also the primary key in the store
SECRET_BYTES = 32  # secrets.token_urlsafe(32): 256 bits, 43 URL-safe base64 characters
MAX_NAME_CHARS = 255  # the api_keys.name column
_TOKEN = re.compile(r"amp_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")  # 43 = len(secrets.token_urlsafe(32))
_KEY_ID = re.compile(r"[0-9a-f]{12}")

MISSING_KEY = "no API key: send one in the Authorization: Bearer header or X-API-Key"
# One message for a malformed token, an unknown id, a wrong secret and a revoked key, so that an
# answer tells a caller nothing about which keys exist.
INVALID_KEY = (
    "the API key is not valid (mistyped, unknown or revoked); check it, or ask an operator for a new one "
    "(`amploop keys create`)"
)


def _sha256_hex(text: str) -> str:
    # A fast hash is right here: the secret has 256 bits of entropy, so there is nothing to guess
    # or brute-force. Slow password hashes (bcrypt, argon2) protect low-entropy passwords, and on
    # every request would cost milliseconds of CPU for no gain.
    return hashlib.sha256(text.encode()).hexdigest()


def _check_role(role: str) -> str:
    if role not in ROLES:
        _, hint = close_matches(role, ROLES)
        raise UsageError(f"unknown role {role!r}; {hint}valid roles: {', '.join(ROLES)}")
    return role


@dataclass(frozen=True, repr=False)
class CreatedKey:
    """A new key: its record and the whole token, which exists nowhere else once this is gone.

    The token is in :meth:`to_dict` (for the one time it is shown), never in ``repr``, so a
    logged or printed ``CreatedKey`` does not leak it.

    >>> from datetime import datetime, timezone
    >>> from amploop.registry.records import ApiKeyRecord
    >>> record = ApiKeyRecord("0123456789ab", "ci", "reader", datetime(2026, 1, 1, tzinfo=timezone.utc), "ci", None)
    >>> CreatedKey(record, "amp_0123456789ab_" + "x" * 43)
    CreatedKey(id='0123456789ab', role='reader', token='amp_0123456789ab_***')
    """

    record: ApiKeyRecord
    token: str

    def __repr__(self) -> str:
        hidden = f"{TOKEN_PREFIX}{self.record.id}_***"
        return f"CreatedKey(id={self.record.id!r}, role={self.record.role!r}, token={hidden!r})"

    def to_dict(self) -> dict[str, Any]:
        """The record's JSON form with ``token`` added: print it once, never log it."""
        return {**self.record.to_dict(), "token": self.token}


def create_api_key(store: Store, *, role: str, name: str = "", actor: str | None = None) -> CreatedKey:
    """Make a key with ``role``, keep its id, role and secret's SHA-256, and return the token once.

    The store writes a ``key.create`` audit entry (with the name and role, never the secret).
    """
    _check_role(role)
    if len(name) > MAX_NAME_CHARS:
        raise UsageError(f"a key name holds at most {MAX_NAME_CHARS} characters; this one has {len(name)}")
    key_id = secrets.token_hex(ID_HEX_CHARS // 2)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    record = store.add_api_key(key_id, name=name, role=role, secret_sha256=_sha256_hex(secret), actor=actor)
    return CreatedKey(record, f"{TOKEN_PREFIX}{key_id}_{secret}")


def authenticate(store: Store, token: str | None) -> ApiKeyRecord:
    """The active key that ``token`` is, or :class:`~amploop.errors.AuthError`.

    A missing token gets a message saying how to send one; any other failure gets the same
    message, whichever it was, and no message holds the token.
    """
    if not token:
        raise AuthError(MISSING_KEY)
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise AuthError(INVALID_KEY)
    key_id, secret = match.groups()
    found = store.api_key_secret(key_id)
    given = _sha256_hex(secret)
    # Compare even for an unknown id, in constant time, so neither path is measurably faster.
    stored = found[1] if found is not None else "0" * len(given)
    if not hmac.compare_digest(given, stored) or found is None or not found[0].active:
        raise AuthError(INVALID_KEY)
    return found[0]


def require_role(record: ApiKeyRecord, role: str) -> ApiKeyRecord:
    """``record`` when its role is ``role`` or above; :class:`~amploop.errors.PermissionDenied` otherwise.

    >>> from datetime import datetime, timezone
    >>> from amploop.registry.records import ApiKeyRecord
    >>> reader = ApiKeyRecord("0123456789ab", "", "reader", datetime(2026, 1, 1, tzinfo=timezone.utc), "ci", None)
    >>> require_role(reader, "reader").id
    '0123456789ab'
    >>> require_role(reader, "operator")
    Traceback (most recent call last):
    ...
    amploop.errors.PermissionDenied: this needs an API key with role operator; key 0123456789ab has role reader ...
    """
    needed = ROLES.index(_check_role(role))
    if record.role not in ROLES or ROLES.index(record.role) < needed:
        raise PermissionDenied(
            f"this needs an API key with role {role}; key {record.id} has role {record.role} "
            f"(`amploop keys create --role {role}` makes one)",
            key_id=record.id,
            role_needed=role,
        )
    return record


def token_from_headers(authorization: str | None, x_api_key: str | None) -> str | None:
    """The token a request sends: ``Authorization: Bearer <token>``, else ``X-API-Key``; None when neither.

    An ``Authorization`` header of another scheme (``Basic ...``) with no ``X-API-Key`` is an
    :class:`~amploop.errors.AuthError` that names the expected form.
    """
    if authorization and authorization.strip():
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
        if not (x_api_key and x_api_key.strip()):
            raise AuthError("the Authorization header must read 'Bearer <API key>'; or send the key in X-API-Key")
    if x_api_key and x_api_key.strip():
        return x_api_key.strip()
    return None


def key_id_of(text: str) -> str:
    """The key id in ``text``: an id as ``amploop keys list`` shows it, or a whole token.

    The error never repeats ``text``, which may be a token pasted by mistake.

    >>> key_id_of("0123456789ab")
    '0123456789ab'
    >>> key_id_of("amp_0123456789ab_" + "x" * 43)
    '0123456789ab'
    """
    text = text.strip()
    if _KEY_ID.fullmatch(text):
        return text
    match = _TOKEN.fullmatch(text)
    if match is None:
        raise UsageError(f"not a key id: an id is {ID_HEX_CHARS} hex characters, as `amploop keys list` shows")
    return match.group(1)


class KeyVerifier:
    """:func:`authenticate` behind a short cache, for a server that checks a key on every request.

    A successful check is kept for ``cache_s`` seconds, by the SHA-256 of the token (never the
    token itself), so a busy client costs one store read per ``cache_s``, not one per request.
    The price: a revoked key keeps working for up to ``cache_s`` seconds on each server that has
    just seen it. Failures are never cached, so a key made a moment ago works at once.
    ``cache_s=0`` checks the store every time. Safe to share between threads.
    """

    def __init__(self, store: Store, *, cache_s: float = 5.0) -> None:
        if cache_s < 0:
            raise UsageError(f"cache_s {cache_s}: the key cache lasts 0 seconds or more")
        self.store = store
        self.cache_s = cache_s
        self._lock = threading.Lock()
        self._verified: dict[str, tuple[ApiKeyRecord, float]] = {}  # sha256(token) -> (record, expires at)

    def verify(self, token: str | None) -> ApiKeyRecord:
        """The active key that ``token`` is (as :func:`authenticate`), from the cache when fresh."""
        if not token or self.cache_s == 0:
            return authenticate(self.store, token)
        digest = _sha256_hex(token)
        now = time.monotonic()
        with self._lock:
            cached = self._verified.get(digest)
        if cached is not None and now < cached[1]:
            return cached[0]
        record = authenticate(self.store, token)  # outside the lock: one slow read blocks no other key
        with self._lock:
            now = time.monotonic()
            # Expired entries go on each insert; the cache holds at most one entry per valid key.
            self._verified = {d: entry for d, entry in self._verified.items() if now < entry[1]}
            self._verified[digest] = (record, now + self.cache_s)
        return record
