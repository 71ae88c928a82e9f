"""Encryption at rest for customer data: column types that encrypt on write and decrypt on read
with the process's keyring (Fernet keys from ``WA_ENCRYPTION_KEY``, newest first; authenticated
encryption, so a tampered or foreign value is refused rather than misread).

Stored forms: text ``enc:v1:<fernet token>``; JSON ``{"_enc": "<fernet token>"}``. A value without
that form is plaintext written before encryption was switched on: it is read as is, and
``wa-tasks keys rotate`` encrypts it. Without a configured key nothing is encrypted (the process
warns at start).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import threading
from collections.abc import Iterator
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import JSON, Text, TypeDecorator
from sqlalchemy.engine import Dialect

PREFIX = "enc:v1:"
JSON_KEY = "_enc"

_lock = threading.Lock()
_keyring: MultiFernet | None = None
_configured = False


class DecryptionError(RuntimeError):
    pass


def configure(keys: list[str]) -> None:
    """Use ``keys`` (Fernet keys, newest first; empty: no encryption) in this process."""
    global _keyring, _configured
    with _lock:
        _keyring = MultiFernet([Fernet(k.strip().encode()) for k in keys]) if keys else None
        _configured = True


def keyring() -> MultiFernet | None:
    global _configured
    if not _configured:
        from wa_tasks.settings import get_settings  # the process's settings, on first use

        configure(get_settings().encryption_keys)
    return _keyring


#: Inside ``same_token_for_same_text``: the tokens made so far, by plaintext.
_tokens: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("tokens", default=None)


@contextlib.contextmanager
def same_token_for_same_text() -> Iterator[None]:
    """Encrypt each distinct plaintext once while inside (one bulk insert): a bulk's 100,000 rows
    of one text carry one token instead of 100,000 (≈6 µs each). Equal rows then show as equal
    ciphertext, which tells a reader of the table nothing its ``bulk_job_id`` column does not."""
    reset = _tokens.set({})
    try:
        yield
    finally:
        _tokens.reset(reset)


def encrypt(plain: str) -> str:
    ring = keyring()
    if ring is None:
        return plain
    tokens = _tokens.get()
    if tokens is None:
        return PREFIX + ring.encrypt(plain.encode()).decode()
    token = tokens.get(plain)
    if token is None:
        token = tokens[plain] = PREFIX + ring.encrypt(plain.encode()).decode()
    return token


def decrypt(stored: str) -> str:
    if not stored.startswith(PREFIX):
        return stored
    ring = keyring()
    if ring is None:
        raise DecryptionError("encrypted data found but WA_ENCRYPTION_KEY is not set: set the key it was written with")
    try:
        return ring.decrypt(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            "cannot decrypt stored data with WA_ENCRYPTION_KEY: the key it was written with is not among the "
            "configured keys (a wrong key, or an old key removed before `wa-tasks keys rotate` finished)"
        ) from None


class EncryptedText(TypeDecorator[str]):
    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else encrypt(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else decrypt(value)


class EncryptedJSON(TypeDecorator[Any]):
    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or keyring() is None:
            return value
        return {JSON_KEY: encrypt(json.dumps(value, ensure_ascii=False))}

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, dict) and set(value) == {JSON_KEY}:
            return json.loads(decrypt(value[JSON_KEY]))
        return value
