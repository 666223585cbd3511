"""Settings of the chat example, read from the environment.

=========================== ======================================================= ==========================
variable                    meaning                                                 default
=========================== ======================================================= ==========================
``WSROUTE_BROKER``          broker URL: ``memory://`` or ``redis://host:port/db``   ``memory://``
``WSROUTE_CHAT_DATA``       folder of the key and messages (``--data``), made if    ``python -m``:
                            missing                                                 ``.chat-data``; else unset
``WSROUTE_CHAT_SECRET``     key that signs sign-in tokens (HMAC-SHA256)             ``<data>/secret``, made
                                                                                    once; without a data
                                                                                    folder, random per process
``WSROUTE_CHAT_DB``         SQLite file for the rooms' messages (``--db``)          ``<data>/chat.sqlite3``;
                                                                                    without a data folder, a
                                                                                    temporary file
``WSROUTE_CHAT_ADMIN_TOKEN`` bearer token of the admin endpoints (announce, kick)  unset: endpoints disabled
``WSROUTE_CHAT_TOKEN_TTL``  lifetime of a sign-in token, in seconds                 43200 (12 hours)
=========================== ======================================================= ==========================

Every worker of one server must share the secret and the database file, or a token
issued by one worker is refused by the other and each sees only its own messages.
``python -m examples.chat`` gives its workers one data folder, where they read both (the
first start writes a new key there). Because the key and the messages
outlive the process, a restart is invisible to users: their tokens stay valid and the rooms
keep their history. Delete the folder (or its ``secret``) to sign everyone out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path

BROKER = "WSROUTE_BROKER"
SECRET = "WSROUTE_CHAT_SECRET"
DB = "WSROUTE_CHAT_DB"
DATA = "WSROUTE_CHAT_DATA"
ADMIN_TOKEN = "WSROUTE_CHAT_ADMIN_TOKEN"
TOKEN_TTL = "WSROUTE_CHAT_TOKEN_TTL"


DEFAULT_DATA = Path(".chat-data")
"""Relative to the working directory (the repository root with the README's command)."""
SECRET_FILE = "secret"
DB_FILE = "chat.sqlite3"


def data_folder(path: Path) -> Path:
    """Make `path` (private to this user) if it is missing; returns it absolute."""
    path = path.resolve()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def stored_secret(folder: Path) -> str:
    """The key kept in `folder`, written (readable by this user only) the first time."""
    path = folder / SECRET_FILE
    if not path.exists():
        # Written whole under another name, then linked in place: link fails if the key
        # exists, so two servers started at once agree on one key, and none reads half a file.
        fd, draft = tempfile.mkstemp(dir=folder, prefix=".secret-")
        try:
            with os.fdopen(fd, "w") as file:  # mkstemp makes it 0600
                file.write(secrets.token_urlsafe(32) + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)
        finally:
            os.unlink(draft)
    secret = path.read_text().strip()
    if not secret:
        raise SystemExit(f"{path} is empty: delete it to make a new key")
    return secret


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
        data = environ.get(DATA)
        folder = data_folder(Path(data)) if data else None
        secret = environ.get(SECRET) or (stored_secret(folder) if folder else secrets.token_urlsafe(32))
        db = environ.get(DB) or (str(folder / DB_FILE) if folder else None)
        ttl = environ.get(TOKEN_TTL)
        return cls(
            secret=secret.encode(),
            db_path=Path(db) if db else None,
            broker=environ.get(BROKER) or "memory://",
            admin_token=environ.get(ADMIN_TOKEN) or None,
            token_ttl=int(ttl) if ttl else 12 * 3600,
        )
