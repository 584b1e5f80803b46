"""Sign-in for the dashboard: an API key exchanged for a signed session cookie, and CSRF tokens.

An operator signs in with an API key (:mod:`amploop.serve.auth`); the server answers with a
cookie holding the key's id, name and role, an expiry and a random session id, signed with
HMAC-SHA256 under a secret that lives only in the server's memory (a restart signs everyone
out). Each form that changes something carries a CSRF token, the HMAC of the session id, and
a change is refused unless the cookie is valid, the key is still active and the token matches.
The standard library does this in a few lines, so no session package is needed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["COOKIE", "Session", "SessionSigner"]

COOKIE = "amploop_session"
SESSION_S = 8 * 3600  # a working day


@dataclass(frozen=True)
class Session:
    """A signed-in operator: the key that signed in, and this session's id."""

    key_id: str
    name: str
    role: str
    sid: str
    expires: float

    @property
    def actor(self) -> str:
        """How the audit log names actions taken in this session."""
        return f"ui:{self.name or self.key_id}"


class SessionSigner:
    """Makes and checks session cookies and CSRF tokens under one secret."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    def _mac(self, data: bytes) -> str:
        return hmac.new(self._secret, data, hashlib.sha256).hexdigest()

    def issue(self, key_id: str, name: str, role: str) -> str:
        fields = {"k": key_id, "n": name, "r": role, "s": secrets.token_hex(16), "e": time.time() + SESSION_S}
        body = base64.urlsafe_b64encode(json.dumps(fields).encode()).decode()
        return f"{body}.{self._mac(body.encode())}"

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie holds, or None when it is missing, altered or expired."""
        if not cookie or "." not in cookie:
            return None
        body, mac = cookie.rsplit(".", 1)
        if not hmac.compare_digest(mac, self._mac(body.encode())):
            return None
        try:
            fields: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body.encode()))
        except ValueError:
            return None
        if fields.get("e", 0) < time.time():
            return None
        return Session(fields["k"], fields["n"], fields["r"], fields["s"], fields["e"])

    def csrf(self, session: Session) -> str:
        return self._mac(f"csrf:{session.sid}".encode())

    def check_csrf(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf(session), token or "")
