"""Settings of the chat example, read from the environment.

=========================== ======================================================= ==========================
variable                    meaning                                                 default
=========================== ======================================================= ==========================
``WSROUTE_BROKER``          broker URL: ``memory://`` or ``redis://host:port/db``   ``memory://``
``WSROUTE_CHAT_SECRET``     key that signs sign-in tokens (HMAC-SHA256)             random, per process
``WSROUTE_CHAT_DB``         SQLite file for the rooms' messages                     a new temporary file
                                                                                    (made at startup)
``WSROUTE_CHAT_ADMIN_TOKEN`` bearer token of the admin endpoints (announce, kick)  unset: endpoints disabled
``WSROUTE_CHAT_TOKEN_TTL``  lifetime of a sign-in token, in seconds                 43200 (12 hours)
=========================== ======================================================= ==========================

Every worker of one server must share the secret and the database file, or a token
issued by one worker is refused by the other and each sees only its own messages.
``python -m examples.chat`` chooses both once and hands them to its workers through these
variables.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path

BROKER = "WSROUTE_BROKER"
SECRET = "WSROUTE_CHAT_SECRET"
DB = "WSROUTE_CHAT_DB"
ADMIN_TOKEN = "WSROUTE_CHAT_ADMIN_TOKEN"
TOKEN_TTL = "WSROUTE_CHAT_TOKEN_TTL"


def temporary_database() -> Path:
    """A new, empty temporary file for the SQLite database."""
    fd, name = tempfile.mkstemp(prefix="wsroute-chat-", suffix=".sqlite3")
    os.close(fd)
    return Path(name)


@dataclasses.dataclass(frozen=True)
class ChatConfig:
    """Everything the app needs to know about its deployment."""

    secret: bytes
    db_path: Path | None = None
    """None: a new temporary file, made when the app starts and removed when it stops."""
    broker: str = "memory://"
    admin_token: str | None = None
    token_ttl: int = 12 * 3600

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ChatConfig:
        """Read the settings from `environ`, with the defaults of the table above."""
        secret = environ.get(SECRET) or secrets.token_urlsafe(32)
        db = environ.get(DB)
        ttl = environ.get(TOKEN_TTL)
        return cls(
            secret=secret.encode(),
            db_path=Path(db) if db else None,
            broker=environ.get(BROKER) or "memory://",
            admin_token=environ.get(ADMIN_TOKEN) or None,
            token_ttl=int(ttl) if ttl else 12 * 3600,
        )
