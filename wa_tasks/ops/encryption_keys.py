"""Keys for encryption at rest (``models.encryption``): generating one, the embedded default's key
file, and rotation: re-encrypting every stored value with the newest key, in small batches while the
system runs (readers keep working because the old keys stay configured until rotation is done)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import select, update

from models import IncomingMessage, Message, encryption
from models.db import session_scope
from wa_tasks.settings import Settings

log = logging.getLogger(__name__)

#: Rows re-encrypted per transaction.
BATCH = 500


def generate() -> str:
    return Fernet.generate_key().decode()


def ensure_key_file(directory: Path) -> str:
    """The embedded default's key: ``<data_dir>/encryption.key`` (mode 0600), created once."""
    path = directory / "encryption.key"
    directory.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        key = generate()
        out.write(key + "\n")
    log.warning("no WA_ENCRYPTION_KEY set: generated %s; back it up, the data cannot be read without it", path)
    return key


def rotate(settings: Settings) -> dict[str, int]:
    """Re-encrypt every encrypted value with the newest key (and encrypt older plaintext values)."""
    if not settings.encryption_keys:
        raise ValueError("set WA_ENCRYPTION_KEY to the new key followed by the old ones (new,old) before rotating")
    encryption.configure(settings.encryption_keys)
    counts: dict[str, int] = {}
    for model, columns in ((Message, ("content", "data", "email")), (IncomingMessage, ("text",))):
        done, last = 0, None
        while True:
            with session_scope(settings.database) as db:
                pk = model.id
                query = select(pk, *(getattr(model, c) for c in columns)).order_by(pk).limit(BATCH)
                if last is not None:
                    query = query.where(pk > last)
                rows = db.execute(query).all()
                for row in rows:
                    values: dict[str, Any] = {c: getattr(row, c) for c in columns}
                    db.execute(update(model).where(pk == row.id).values(**values))
            if not rows:
                break
            done += len(rows)
            last = rows[-1].id
        counts[model.__tablename__] = done
    return counts
