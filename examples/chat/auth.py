"""Sign-in tokens (HMAC-SHA256, standard library only) and the guard that checks them.

A token is ``v1.<payload>.<signature>``: the payload is base64url JSON
``{"sub": user id, "name": display name, "exp": unix time, "since": first sign-in, "kid": key id}``
and the signature
is the base64url HMAC-SHA256 of ``v1.<payload>`` with the server's secret. Nothing is stored on
the server; any worker that knows the secret can check a token. The key id (a hash of the
secret, which it does not reveal) tells a token signed with an older key from a forged one, so
that a user whose server changed its key is told so instead of "not valid".

Clients present it, in this order of preference, as ``Authorization: Bearer <token>``,
as the ``wsroute_chat_token`` cookie (what the browser page uses: the sign-in response
sets it HttpOnly, and a multiplexed socket's topics all carry the handshake's cookies),
or as a ``?token=`` query parameter (for WebSocket clients that cannot set headers).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from typing import Any, Literal

from fastapi import HTTPException, Request
from starlette.requests import HTTPConnection

from examples.chat.models import User
from wsroute import Guard, HandshakeRequest, Reject
from wsroute.asyncapi import SecurityScheme

COOKIE = "wsroute_chat_token"
_VERSION = "v1"

Problem = Literal["missing", "invalid", "expired", "rekeyed"]

MESSAGES: dict[Problem, str] = {
    "missing": "You are not signed in.",
    "invalid": "Your sign-in token is not valid (it was not issued by this server). Sign in again.",
    "expired": "Your sign-in has expired. Sign in again.",
    "rekeyed": "The server restarted with a new key: please sign in again.",
}


class TokenError(Exception):
    """A token that cannot be used; `problem` says why (``missing``, ``invalid``, ``expired``,
    ``rekeyed``: signed by this server's previous key)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(MESSAGES[problem])
        self.problem: Problem = problem

    @property
    def detail(self) -> dict[str, str]:
        """The JSON error body of a 401: ``{"reason": ..., "message": ...}``."""
        return {"reason": self.problem, "message": MESSAGES[self.problem]}


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, signed: str) -> str:
    return _b64encode(hmac.new(secret, signed.encode("ascii"), hashlib.sha256).digest())


def key_id(secret: bytes) -> str:
    """A short public name of `secret`: equal ids, (almost surely) the same key."""
    return _b64encode(hashlib.sha256(b"wsroute-chat key id:" + secret).digest()[:6])


def new_user(name: str) -> User:
    """A user with a fresh random id."""
    return User(id=secrets.token_hex(8), name=name)


def returning_user(
    secret: bytes, token: str | None, *, within: float, keep_for: float, now: float | None = None
) -> tuple[User, int] | None:
    """The user of a token this server signed that expired less than `within` seconds ago
    (or not yet), and when that user first signed in, if that is less than `keep_for`
    seconds ago: a browser signing in again is the same user, for a while. None for no
    token, a forged one, one of another key, or one past either bound (so a leaked token
    cannot be renewed forever)."""
    moment = time.time() if now is None else now
    try:
        user, expires, claims = _signed(secret, token)
        since = int(claims["since"])
    except (TokenError, ValueError, KeyError, TypeError):
        return None
    if expires <= moment - within or since <= moment - keep_for:
        return None
    return user, since


def issue(
    secret: bytes, user: User, ttl: float, *, now: float | None = None, since: float | None = None
) -> tuple[str, int]:
    """A signed token for `user`, valid `ttl` seconds; returns ``(token, expires_at)``.
    `since`: when the user first signed in (now, unless this renews an earlier sign-in)."""
    moment = time.time() if now is None else now
    expires = int(moment + ttl)
    claims = {
        "sub": user.id,
        "name": user.name,
        "exp": expires,
        "since": int(moment if since is None else since),
        "kid": key_id(secret),
    }
    payload = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
    signed = f"{_VERSION}.{payload}"
    return f"{signed}.{_sign(secret, signed)}", expires


def verify(secret: bytes, token: str | None, *, now: float | None = None) -> tuple[User, int]:
    """The user and expiry time a token carries; `TokenError` when it is missing, forged or expired."""
    user, expires, _ = _signed(secret, token)
    if expires <= (time.time() if now is None else now):
        raise TokenError("expired")
    return user, expires


def _signed(secret: bytes, token: str | None) -> tuple[User, int, Any]:
    """The user, expiry time and claims of a token this server signed, expired or not;
    `TokenError` when it is missing or forged (or signed with another key)."""
    if not token:
        raise TokenError("missing")
    version, _, rest = token.partition(".")
    payload, _, signature = rest.partition(".")
    if version != _VERSION or not payload or not signature or not token.isascii():
        raise TokenError("invalid")
    # Compare signatures before trusting anything inside: a payload whose signature fails is
    # read only for its key id, to choose which sentence the user sees.
    if not hmac.compare_digest(_sign(secret, f"{version}.{payload}"), signature):
        raise TokenError("rekeyed" if _other_key(secret, payload) else "invalid")
    try:
        claims: Any = json.loads(_b64decode(payload))
        user = User(id=claims["sub"], name=claims["name"])
        expires = int(claims["exp"])
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise TokenError("invalid") from exc
    return user, expires, claims


_MAX_PAYLOAD = 1024
"""Longest payload read for its key id when its signature fails (ours are about 150)."""


def _other_key(secret: bytes, payload: str) -> bool:
    """The payload names a key id, and not this secret's (a token of an earlier key). It is
    unverified input: bounded in size, and whatever fails to parse is just "not a key id"."""
    if len(payload) > _MAX_PAYLOAD:
        return False
    try:
        kid: Any = json.loads(_b64decode(payload)).get("kid")
    except Exception:  # deep nesting (RecursionError), bad base64 or JSON, not an object
        return False
    return isinstance(kid, str) and kid != key_id(secret)


def token_from(connection: HTTPConnection) -> str | None:
    """The token a request carries: bearer header, then cookie, then ``?token=``."""
    scheme, _, credentials = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return connection.cookies.get(COOKIE) or connection.query_params.get("token")


def _secret(connection: HTTPConnection) -> bytes:
    secret: bytes = connection.app.state.chat.config.secret
    return secret


class Member(Guard):
    """The signed-in user of a WebSocket connection; refuses the handshake with 401 otherwise.

    wsroute builds a guard once per connection (per topic of a multiplexed socket) and
    keeps it; the check itself also goes through the connection's local cache, so any
    dependency that needs the user asks ``request.local_cache`` and the token is verified
    once per connection, never per message.
    """

    sync_to_thread = False  # an HMAC over a signed token: no I/O, so no thread hop

    security = SecurityScheme.http_bearer(
        bearer_format="wsroute-chat token",
        description="The token `POST /api/session` returns, as `Authorization: Bearer <token>`. "
        f"Browsers send it as the `{COOKIE}` cookie the sign-in sets; clients that cannot set "
        "headers may pass `?token=<token>`. Without a valid token the handshake is refused with 401.",
        name="signedIn",
    )

    def __init__(self, user: User, expires_at: int) -> None:
        self.user = user
        self.expires_at = expires_at

    @classmethod
    def from_request(cls, request: HandshakeRequest) -> Member:
        """Verify the token once for this connection, or refuse it with 401."""
        outcome = request.local_cache("chat.member", lambda: _check(request))
        if isinstance(outcome, TokenError):
            raise Reject(401, outcome.detail, headers={"WWW-Authenticate": "Bearer"})
        return outcome


def _check(request: HandshakeRequest) -> Member | TokenError:
    try:
        return Member(*verify(_secret(request), token_from(request)))
    except TokenError as exc:
        return exc


def http_member(request: Request) -> Member:
    """FastAPI dependency: the signed-in user of an HTTP request, or 401 with the reason."""
    try:
        return Member(*verify(_secret(request), token_from(request)))
    except TokenError as exc:
        raise HTTPException(401, exc.detail, headers={"WWW-Authenticate": "Bearer"}) from exc


def check_admin(request: Request) -> None:
    """FastAPI dependency: the request carries the admin token (``Authorization: Bearer``)."""
    expected: str | None = request.app.state.chat.config.admin_token
    if expected is None:
        raise HTTPException(403, "The admin endpoints are disabled: set WSROUTE_CHAT_ADMIN_TOKEN.")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise HTTPException(401, "Admin token required.", headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise HTTPException(403, "Wrong admin token.")
