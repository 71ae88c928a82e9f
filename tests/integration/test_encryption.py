"""Customer data at rest (real database): message texts and template data are not readable in the
database, key rotation keeps everything readable, and a wrong key gives a clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select, text

from models import Message, encryption
from models.db import session_scope
from wa_tasks.client import Client
from wa_tasks.ops import encryption_keys
from wa_tasks.settings import Settings

pytestmark = pytest.mark.integration

SECRET_TEXT = "Tagihan Budi Rp150.000 untuk INV-2026-0042"


@pytest.fixture(autouse=True)
def _restore_keyring() -> Iterator[None]:
    yield
    encryption.configure([os.environ["WA_ENCRYPTION_KEY"]])


def _raw(settings: Settings) -> list[tuple[str, str]]:
    with session_scope(settings.database) as db:
        return [
            (str(c), json.dumps(d) if not isinstance(d, str) else d)
            for c, d in db.execute(text("SELECT content, data FROM whatsapp_messages")).all()
        ]


def test_message_texts_and_template_data_are_not_readable_in_the_database(settings: Settings) -> None:
    client = Client(settings)
    message_id = client.send("081234567890", text=SECRET_TEXT, email="budi@example.com")

    [(content, _data)] = _raw(settings)
    assert content.startswith("enc:v1:") and "Budi" not in content and "150.000" not in content
    with session_scope(settings.database) as db:
        [email] = db.execute(text("SELECT email FROM whatsapp_messages")).scalars().all()
    assert email.startswith("enc:v1:") and "budi" not in email
    with session_scope(settings.database) as db:
        assert db.get(Message, message_id).content == SECRET_TEXT  # type: ignore[union-attr]


def test_a_bulk_encrypts_each_distinct_text_once_and_every_row_reads_back(settings: Settings) -> None:
    # Given a bulk of one shared text and two per-recipient texts (a template with data)
    client = Client(settings)
    client.send_bulk([{"whatsapp": f"08123456789{i}"} for i in range(3)], text=SECRET_TEXT)
    client.send_bulk([{"whatsapp": "081234567890"}], text=SECRET_TEXT)
    # Then no text is readable in the database, one bulk's equal texts share one token (encrypted
    # once), another bulk's do not, and every row decrypts to its text
    tokens = [content for content, _data in _raw(settings)]
    assert all(t.startswith("enc:v1:") and "Budi" not in t for t in tokens)
    assert len(set(tokens)) == 2
    with session_scope(settings.database) as db:
        assert set(db.execute(select(Message.content)).scalars()) == {SECRET_TEXT}
    # And outside a bulk each encryption is its own token
    assert encryption.encrypt(SECRET_TEXT) != encryption.encrypt(SECRET_TEXT)


def test_rotation_re_encrypts_everything_with_the_new_key_and_keeps_it_readable(settings: Settings) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    # Given rows written with the old key, and one written before encryption was switched on
    encryption.configure([])
    with session_scope(settings.database) as db:
        db.add(Message(id="msg_plain", to_number="6281234567890", content="lama tanpa kunci", data={"a": 1}))
    encryption.configure([old])
    with session_scope(settings.database) as db:
        db.add(Message(id="msg_old", to_number="6281234567890", content=SECRET_TEXT, data={"nama": "Budi"}))

    # When the keys are rotated (new key first, old one still listed)
    counts = encryption_keys.rotate(settings.model_copy(update={"encryption_key": SecretStr(f"{new},{old}")}))

    # Then every row is readable with the new key alone, the plaintext one is now encrypted too
    assert counts["whatsapp_messages"] == 2
    assert all(c.startswith("enc:v1:") for c, _ in _raw(settings))
    encryption.configure([new])
    with session_scope(settings.database) as db:
        rows = {m.id: (m.content, m.data) for m in db.scalars(select(Message))}
    assert rows == {"msg_plain": ("lama tanpa kunci", {"a": 1}), "msg_old": (SECRET_TEXT, {"nama": "Budi"})}

    # And the old key alone no longer reads them, with an error that says why
    encryption.configure([old])
    with session_scope(settings.database) as db, pytest.raises(encryption.DecryptionError, match="not among"):
        db.scalars(select(Message)).all()


def test_a_wrong_key_is_a_clear_error(settings: Settings) -> None:
    Client(settings).send("081234567890", text=SECRET_TEXT)
    encryption.configure([Fernet.generate_key().decode()])
    with session_scope(settings.database) as db, pytest.raises(encryption.DecryptionError, match="WA_ENCRYPTION_KEY"):
        db.scalars(select(Message.content)).all()


def test_the_keys_commands(settings: Settings) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WA_")}
    env["WA_DATABASE_URL"] = settings.database
    generated = subprocess.run(
        [sys.executable, "-m", "wa_tasks", "keys", "generate"], env=env, capture_output=True, text=True, timeout=60
    )
    Fernet(generated.stdout.strip().encode())  # a valid key
    refused = subprocess.run(
        [sys.executable, "-m", "wa_tasks", "keys", "rotate"], env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0 and "set WA_ENCRYPTION_KEY" in refused.stderr
