"""One message request, as every send entry point hands it to :mod:`wa_tasks.pipeline.submit`.

The thin client's ``send``/``send_media``/``notify``, the public ``wa.send``/``wa.notify`` tasks,
``POST /api/whatsapp/send`` and ``wa-tasks send`` each take their own input shape (keyword
arguments, task kwargs, a JSON body, command-line options), build a :class:`SendRequest` from it
and pass that down; ``submit.prepare`` consumes it. What a request may hold, and what makes it
valid on its own, is written here once.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wa_tasks.core import priorities, rendering, webhook_rules
from wa_tasks.errors import InvalidMessage
from wa_tasks.pipeline import schedule
from wa_tasks.pipeline.fallback import check_address
from wa_tasks.pipeline.media import Media

#: Longest idempotency key (the ``idempotency_key`` column holds 200 characters).
MAX_KEY_LENGTH = 200


@dataclass(frozen=True)
class SendRequest:
    """One message to queue: its recipient, its content (``text``, or ``template`` rendered with
    ``data``), its priority, idempotency key, session preference, fallback email and media.

    It is the one description of a send request: a field added here, with its check in
    :meth:`__post_init__`, is carried from each entry point's mapping to ``submit.prepare``.

    Building one checks everything that needs neither the settings nor the database and raises an
    :class:`~wa_tasks.errors.InvalidRequest` subclass quoting the caller's input; the rest (the
    number in the configured region, the template, the session, opt-out, the contact cache) is
    checked by ``submit.prepare``. Entry points whose input is untyped (the Celery tasks) pass it
    as it came: the checks here are what types it.

    It lives in the pipeline layer, not in ``core``: it carries a :class:`~wa_tasks.pipeline.media.Media`
    and checks the fallback address with the email fallback's own rule; every entry point (client,
    tasks, web, command line) is above the pipeline and can build one.
    """

    #: The recipient as the caller wrote it (a number in any accepted form, or a WhatsApp JID);
    #: ``submit.prepare`` normalizes it with the configured default region.
    to: str
    #: The message text (a media message's caption); exactly one of ``text`` or ``template``.
    text: str | None = None
    #: A stored template's name, rendered with ``data``.
    template: str | None = None
    #: Template variables (and ``customer_email``, the default fallback address).
    data: dict[str, Any] | None = None
    #: "urgent", "high", "normal", "low" or a Redis priority step 0..9.
    priority: str | int = priorities.DEFAULT
    #: A repeated key returns the first message's id and sends nothing new.
    idempotency_key: str | None = None
    #: The session the message must go through (``requested_session``).
    session: str | None = None
    #: The customer's address for the email fallback (default: ``data["customer_email"]``).
    email: str | None = None
    #: An image or document sent with the text or the rendered template as its caption.
    media: Media | None = None
    #: When it goes: an aware datetime, an ISO 8601 time with its offset or a unix time; later
    #: than now, the message is stored ``scheduled`` (``wa_tasks.pipeline.schedule``).
    send_at: dt.datetime | str | float | None = None
    #: Not sent by then: ``expired``, never sent late (same forms as ``send_at``).
    expires_at: dt.datetime | str | float | None = None
    #: At most one message per notice key (``invoice:INV-7:reminder:H-3``); a repeated key
    #: returns the first message's id.
    notice_key: str | None = None
    #: What the message is about (an invoice number): ``cancel_pending`` cancels a ref's waiting notices.
    ref: str | None = None
    #: The customer's time zone for the send window (default ``WA_TIMEZONE``).
    tz: str | None = None
    #: Where this message's status events go, besides ``WA_STATUS_WEBHOOK_URL``: an http(s) URL
    #: (``wa_tasks.pipeline.webhooks``). Its address is checked against the settings by ``submit.prepare``.
    callback_url: str | None = None

    def __post_init__(self) -> None:
        media = self.media
        for value, what in (
            (self.text, "text"),
            (self.template, "template"),
            (self.data, "data"),
            (self.idempotency_key, "idempotency_key"),
            (self.session, "session"),
            (self.email, "email"),
            (media and {"url": media.url, "mimetype": media.mimetype, "filename": media.filename}, "media"),
        ):
            refuse_nul(value, what)
        priorities.resolve(self.priority)
        if self.data is not None and not isinstance(self.data, dict):
            raise InvalidMessage(f"data must be a mapping of template variables, got {type(self.data).__name__}")
        if media is not None and self.text is None and self.template is None:
            raise InvalidMessage("a media message needs a caption= or a template= for its caption")
        if (self.text is None) == (self.template is None):
            raise InvalidMessage("give exactly one of text= or template=")
        if self.text is not None:
            if not isinstance(self.text, str):
                raise InvalidMessage(f"text must be a string, got {type(self.text).__name__}")
            if not self.text.strip():
                raise InvalidMessage("text is empty")
            if len(self.text) > rendering.MAX_LENGTH:
                raise InvalidMessage(f"text is {len(self.text)} characters; the limit is {rendering.MAX_LENGTH}")
        elif not isinstance(self.template, str) or not self.template.strip():
            raise InvalidMessage("template must be a template name")
        key = self.idempotency_key
        if key is not None and (not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY_LENGTH):
            raise InvalidMessage(f"idempotency_key must be a non-empty string of at most {MAX_KEY_LENGTH} characters")
        self.fallback_email()
        # Its form here; whether it may point at a private address is the settings' (submit.prepare).
        webhook_rules.check_callback_url(self.callback_url, allow_private=True)
        # The timing on its own (types, naive times, an expiry before the send, the zone, the
        # keys' lengths); how far in the past a send_at may be is the settings' and is checked by
        # ``submit.prepare``.
        schedule.check(
            send_at=self.send_at,
            expires_at=self.expires_at,
            notice_key=self.notice_key,
            ref=self.ref,
            tz=self.tz,
            grace_seconds=math.inf,
        )

    @property
    def step(self) -> int:
        """The Redis priority step (0 is the highest)."""
        return priorities.resolve(self.priority)

    def fallback_email(self) -> str | None:
        """Where the email fallback sends the message: ``email``, else ``data["customer_email"]``, trimmed."""
        address = self.email
        if address is None and self.data is not None:
            address = self.data.get("customer_email")
        return check_address(address)


def refuse_nul(value: object, what: str) -> None:
    """Raise :class:`InvalidMessage` if ``value`` holds a NUL character (U+0000): a string, or any
    string key or value inside nested mappings and lists (template data). PostgreSQL text cannot
    store one, the message is not meant to carry one, and refusing it here, where every request
    (client, tasks, API, command line, bulk) is validated, keeps the rule in one place. The error
    names where it is: ``data['items'][2]['name']``. Each container is looked at once, without
    recursion, so deep or self-referencing data costs its size and no more."""
    pending: list[tuple[object, tuple[object, ...]]] = [(value, ())]
    seen: set[int] = set()
    while pending:
        item, path = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                where = what + "".join(f"[{key!r}]" for key in path)
                raise InvalidMessage(f"{where} contains a NUL character (\\u0000); remove it")
            continue
        if isinstance(item, Mapping | list | tuple | set | frozenset):
            if id(item) in seen:
                continue
            seen.add(id(item))
            pairs = item.items() if isinstance(item, Mapping) else enumerate(item)
            for key, inner in pairs:
                if isinstance(key, str) and "\x00" in key:
                    where = what + "".join(f"[{k!r}]" for k in path)
                    raise InvalidMessage(f"{where} has a key with a NUL character (\\u0000): {key!r}; remove it")
                pending.append((inner, (*path, key)))
