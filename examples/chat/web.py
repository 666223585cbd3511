"""The HTTP side: the page, sign-in, room history and members, the admin endpoints, health.

=========================================== =================================================
``GET /``, ``GET /rooms/{room}``            the chat page (a room's URL is also its WebSocket)
``POST /api/session``                       sign in with a display name: a signed token, also
                                            set as an HttpOnly cookie
``GET /api/session``                        who the token belongs to, or 401 with the reason
``DELETE /api/session``                     sign out (clears the cookie)
``GET /api/rooms/{room}/messages``          the room's last 50 messages (signed-in users)
``GET /api/rooms/{room}/members``           who is in the room, on every worker, then who
                                            was and when (signed-in users)
``POST /api/admin/rooms/{room}/announce``   broadcast an announcement (admin token)
``POST /api/admin/users/{user_id}/kick``    close every socket of a user, on every worker
                                            (admin token)
``GET /api/health``                         this worker's pid and broker
``GET /docs``                               Swagger UI of this HTTP API, its script and
                                            stylesheet served from ``static/swagger/``
=========================================== =================================================
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse

from examples.chat import auth
from examples.chat.auth import Member, check_admin, http_member
from examples.chat.models import (
    HISTORY,
    ROOM_PATTERN,
    Announce,
    Announcement,
    History,
    Kicked,
    Members,
    Session,
    SignIn,
)
from examples.chat.rooms import KICKED, KICKED_REASON, room_members
from examples.chat.state import State
from wsroute import AppBroker

STATIC = FilePath(__file__).parent / "static"
DOCS = "/docs"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"

COOKIE_GRACE = 7 * 24 * 3600
KEEP_USER_FOR = 30 * 24 * 3600
"""How long a browser that keeps signing in with one name stays one user (from the first)."""
router = APIRouter()

Room = Annotated[str, Path(pattern=ROOM_PATTERN, description="Room name: a-z, 0-9, '-' and '_'.")]
UserId = Annotated[str, Path(min_length=1, max_length=64, description="A user's id (`Session.user.id`).")]
SignedIn = Annotated[Member, Depends(http_member)]


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    """The chat page."""
    return FileResponse(STATIC / "index.html")


@router.get("/rooms/{room}", include_in_schema=False)
async def room_page(room: Room) -> FileResponse:
    """The chat page, opened on `room` (a WebSocket handshake to this URL enters the room)."""
    return FileResponse(STATIC / "index.html")


@router.get("/echo.html", include_in_schema=False)
async def echo_page() -> FileResponse:
    """The guide's echo page."""
    return FileResponse(STATIC / "echo.html")


@router.get(DOCS, include_in_schema=False)
async def docs(request: Request) -> HTMLResponse:
    """FastAPI's Swagger UI, but with its files from ``static/swagger/``: the default loads them
    from a CDN, and the page stays blank offline."""
    root = request.scope.get("root_path", "").rstrip("/")
    return get_swagger_ui_html(
        openapi_url=root + request.app.openapi_url,
        title=f"{request.app.title} - Swagger UI",
        oauth2_redirect_url=root + OAUTH2_REDIRECT,
        swagger_js_url=f"{root}/static/swagger/swagger-ui-bundle.js",
        swagger_css_url=f"{root}/static/swagger/swagger-ui.css",
        swagger_favicon_url=f"{root}/static/favicon.svg",
    )


@router.get(OAUTH2_REDIRECT, include_in_schema=False)
async def docs_oauth2_redirect() -> HTMLResponse:
    """Where Swagger UI's OAuth2 sign-in returns (FastAPI adds it only with its own ``/docs``)."""
    return get_swagger_ui_oauth2_redirect_html()


@router.post("/api/session", status_code=201, tags=["session"])
async def sign_in(body: SignIn, request: Request, response: Response, state: State) -> Session:
    """Sign in with a display name; returns a signed token that expires, also set as a cookie.
    A browser whose cookie holds a token of that same name (valid, or expired less than a
    week ago) signs in as the same user again, for up to 30 days from its first sign-in:
    one person, one entry in a room's member list. (The 30 days bound a leaked token; the
    cookie is only where a browser keeps it.)"""
    ttl = state.config.token_ttl
    secret = state.config.secret
    cookie = request.cookies.get(auth.COOKIE)
    known = auth.returning_user(secret, cookie, within=COOKIE_GRACE, keep_for=KEEP_USER_FOR)
    if known is not None and known[0].name == body.name:
        user, since = known
        token, expires = auth.issue(secret, user, ttl, since=since)
    else:
        user = auth.new_user(body.name)
        token, expires = auth.issue(secret, user, ttl)
    response.set_cookie(
        auth.COOKIE,
        token,
        # The browser keeps the cookie past the token's expiry so that the server, which checks
        # the expiry, can say "expired" instead of the page finding no cookie at all.
        max_age=ttl + COOKIE_GRACE,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return Session(user=user, expires_at=datetime.fromtimestamp(expires, UTC), token=token)


@router.get(
    "/api/session", tags=["session"], responses={401: {"description": "Not signed in (with the reason)"}}
)
async def session(member: SignedIn) -> Session:
    """Who is signed in. 401 says why not: ``missing``, ``invalid``, ``expired`` or ``rekeyed`` (signed
    with a key this server no longer has)."""
    return Session(user=member.user, expires_at=datetime.fromtimestamp(member.expires_at, UTC))


@router.delete("/api/session", status_code=204, tags=["session"])
async def sign_out(response: Response) -> None:
    """Sign out: forget the cookie (a token already handed out stays valid until it expires)."""
    response.delete_cookie(auth.COOKIE, httponly=True, samesite="strict")


@router.get("/api/rooms/{room}/messages", tags=["rooms"])
async def history(
    room: Room,
    member: SignedIn,
    state: State,
    limit: Annotated[int, Query(ge=1, le=HISTORY)] = HISTORY,
) -> History:
    """The last messages of a room (at most 50), oldest first, from the store.

    The store is written first, even when live delivery is down (Redis unreachable), so it
    holds what the broker's history may miss; the broker's history is what a reconnecting
    page is replayed.
    """
    return History(room=room, messages=await state.store.history(room, limit))


@router.get("/api/rooms/{room}/members", tags=["rooms"])
async def members(room: Room, member: SignedIn, state: State, broker: AppBroker) -> Members:
    """Who is in a room: first who is connected now, on every worker (the broker's presence),
    each user once with how many connections they have to it; then up to 50 users seen in it
    within 30 days who are not connected, with when they last entered or left it."""
    return Members(room=room, members=await room_members(broker, state.store, room))


@router.post(
    "/api/admin/rooms/{room}/announce", status_code=202, tags=["admin"], dependencies=[Depends(check_admin)]
)
async def announce(room: Room, body: Announce, state: State, broker: AppBroker) -> Announcement:
    """Broadcast an announcement to everyone in a room, on every worker (``Broker.broadcast_to``).

    Needs ``Authorization: Bearer <WSROUTE_CHAT_ADMIN_TOKEN>``. 503 when the broker is down
    (the announcement is kept in the room's history all the same).
    """
    announcement = await state.store.add_announcement(room, body.text)
    await broker.broadcast_to(f"/rooms/{room}", announcement)
    return announcement


@router.post("/api/admin/users/{user_id}/kick", tags=["admin"], dependencies=[Depends(check_admin)])
async def kick(user_id: UserId, broker: AppBroker) -> Kicked:
    """Remove a user from the chat: close every socket of theirs, on every worker
    (``Broker.disconnect``), with code 4403, which tells the page not to reconnect.

    Needs ``Authorization: Bearer <WSROUTE_CHAT_ADMIN_TOKEN>``. Their sign-in stays valid: this
    is a kick, not a ban. 503 when the broker is down.
    """
    closed = await broker.disconnect(user=user_id, code=KICKED, reason=KICKED_REASON)
    return Kicked(closed=closed)


@router.get("/api/health", tags=["ops"])
async def health(request: Request, state: State) -> dict[str, object]:
    """This worker's process id and broker kind (tests use it to see which worker answered),
    and whether the AsyncAPI page is served."""
    paths = {getattr(route, "path", None) for route in request.app.routes}
    return {
        "status": "ok",
        "worker": os.getpid(),
        "broker": state.config.broker.partition("://")[0],
        "asyncapi": "/asyncapi" in paths,
    }
