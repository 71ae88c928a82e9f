"""Notification triggers: billing events mapped to a template and a priority.

=======================  ========================  ========
event                    template                  priority
=======================  ========================  ========
``invoice.created``      ``new_invoice``           normal
``payment.completed``    ``payment_confirmation``  urgent
``service.expiring``     ``expiry_warning``        normal
``voucher.activated``    ``voucher_activated``     urgent
``service.suspended``    ``isolir_notice``         high
``service.reactivated``  ``reactivation_notice``   urgent
``bulk.send``            ``data["templateName"]``  high (one bulk job)
=======================  ========================  ========

``service.suspended`` is the isolir: the router cut the customer off for an unpaid invoice, and the
notice tells them why and where to pay, ahead of routine messages. ``service.reactivated`` answers a
payment the customer is waiting on, as urgent as the payment's confirmation.

``payment.completed`` also cancels the invoice's waiting notices (``data["invoice_number"]``: its
scheduled reminders, overdue and isolir notices) in the transaction that queues the confirmation.
Every trigger whose data names an ``invoice_number`` stores it as the message's ``ref``.

The customer's number is ``data["customer_whatsapp"]`` (as billing events carry it) or
``data["to"]``; the whole of ``data`` is the template's data. Billing code adds or replaces mappings
with :func:`register` (process-wide: a worker running ``wa.notify`` knows the built-ins and what
*its* process registered; callers of ``wa.notify`` from another codebase pass ``template=`` instead).

A trigger that cannot be carried out is never swallowed: the thin client raises an
:class:`~wa_tasks.errors.InvalidRequest` subclass, and the ``wa.notify`` task records it as a
``failed`` message with the reason.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wa_tasks.core import priorities
from wa_tasks.errors import InvalidMessage, InvalidRequest, MissingRecipient, UnknownEvent

#: A time as callers give it (an aware datetime, ISO 8601 or a unix time), checked by the send.
Moment = dt.datetime | str | float | None

#: The event that sends one template to many recipients as a bulk job.
BULK_SEND = "bulk.send"


@dataclass(frozen=True)
class Trigger:
    """What an event sends."""

    template: str
    priority: str | int = "normal"


#: The built-in triggers: each billing event and the default template it sends.
BUILTIN: Mapping[str, Trigger] = {
    "invoice.created": Trigger("new_invoice"),
    "payment.completed": Trigger("payment_confirmation", "urgent"),
    "service.expiring": Trigger("expiry_warning"),
    "voucher.activated": Trigger("voucher_activated", "urgent"),
    "service.suspended": Trigger("isolir_notice", "high"),
    "service.reactivated": Trigger("reactivation_notice", "urgent"),
}
#: Events whose message cancels the invoice's waiting notices (every category: its reminders,
#: overdue and isolir notices) in the transaction that stores it.
CANCELS_PENDING = frozenset({"payment.completed"})
#: The longest ref (``whatsapp_messages.ref``).
MAX_REF = 100
#: Priority of ``bulk.send`` jobs: ahead of routine messages, behind urgent ones.
BULK_PRIORITY = "high"

_registered: dict[str, Trigger] = {}
_lock = threading.Lock()


def register(event: str, template: str, *, priority: str | int = "normal") -> None:
    """Map ``event`` to ``template`` (replacing a built-in mapping of the same event)."""
    if not isinstance(event, str) or not event.strip() or event != event.strip():
        raise UnknownEvent(f"event name must be a non-empty string without surrounding spaces, got {event!r}")
    if event == BULK_SEND:
        raise UnknownEvent(f"{BULK_SEND!r} is built in (it names its template in its data) and cannot be mapped")
    if not isinstance(template, str) or not template.strip():
        raise InvalidMessage(f"template must be a template name, got {template!r}")
    priorities.resolve(priority)  # refuse a bad priority now, not at the first event
    with _lock:
        _registered[event] = Trigger(template, priority)


def unregister(event: str) -> None:
    """Forget a registered mapping (a built-in one comes back)."""
    with _lock:
        _registered.pop(event, None)


def mapping() -> dict[str, Trigger]:
    """Every event this process handles (besides ``bulk.send``) and what it sends."""
    with _lock:
        return {**BUILTIN, **_registered}


def resolve(event: object) -> Trigger:
    """The trigger of ``event``, or :class:`UnknownEvent` listing the known ones."""
    known = mapping()
    if isinstance(event, str) and event in known:
        return known[event]
    names = ", ".join(sorted([*known, BULK_SEND]))
    raise UnknownEvent(
        f"no trigger for event {event!r}; known events: {names}. "
        "Map it with wa_tasks.core.triggers.register(event, template) or pass template="
    )


def recipient_of(data: Mapping[str, Any]) -> str:
    """The customer's number from trigger data: ``customer_whatsapp`` (as billing events carry it) or ``to``."""
    number = data.get("customer_whatsapp") or data.get("to")
    if not number:
        raise MissingRecipient(
            "trigger data has no customer number: give data['customer_whatsapp'] (or data['to']), e.g. '0812-3456-7890'"
        )
    if not isinstance(number, str):
        raise MissingRecipient(f"data['customer_whatsapp'] must be a string phone number, got {number!r}")
    return number


@dataclass(frozen=True)
class Send:
    """What an event sends: one message, ``template`` rendered with ``data``, to ``to``."""

    to: str
    template: str
    data: dict[str, Any]
    priority: str | int
    idempotency_key: str | None
    session: str | None
    #: When it goes and until when (``send_at``/``expires_at`` of ``notify``; None: at once, no limit).
    send_at: Moment = None
    expires_at: Moment = None
    #: What the message is about (``data["invoice_number"]``): it groups the customer's notices.
    ref: str | None = None
    #: The ref whose waiting notices are cancelled in the transaction that stores this message
    #: (``payment.completed``: a customer who paid gets no more reminders for that invoice).
    cancels_ref: str | None = None


@dataclass(frozen=True)
class Bulk:
    """What ``bulk.send`` sends: one bulk job of ``template`` to ``recipients``."""

    recipients: list[Any]
    template: str
    template_data: Mapping[str, Any] | None
    priority: str | int
    idempotency_key: str | None
    send_at: Moment = None
    expires_at: Moment = None


#: What a trigger sends, for the caller (``Client.notify``, the ``wa.notify`` task) to carry out.
Plan = Send | Bulk


def plan(
    event: object,
    data: object,
    *,
    idempotency_key: str | None = None,
    template: str | None = None,
    priority: str | int | None = None,
    session: str | None = None,
    send_at: Moment = None,
    expires_at: Moment = None,
) -> Plan:
    """What ``event`` sends: one message, or for ``bulk.send`` a bulk job.

    ``template``/``priority`` override the mapping for this call (and let a caller use an event
    this process has no mapping for). ``send_at``/``expires_at`` are carried to the send, which checks them.
    """
    if not isinstance(data, Mapping):
        raise InvalidMessage(f"trigger data must be a mapping, got {type(data).__name__}")
    if event == BULK_SEND:
        planned = _bulk(data, idempotency_key=idempotency_key, template=template, priority=priority)
        return dataclasses.replace(planned, send_at=send_at, expires_at=expires_at)
    if template:
        if not isinstance(event, str) or not event.strip():
            raise UnknownEvent(f"event name must be a non-empty string, got {event!r}")
        known = mapping().get(event)
        trigger = Trigger(template, known.priority if known else "normal")
    else:
        trigger = resolve(event)
    ref = invoice_of(data)
    return Send(
        recipient_of(data),
        template=trigger.template,
        data=dict(data),
        priority=priority if priority is not None else trigger.priority,
        idempotency_key=idempotency_key,
        session=session,
        send_at=send_at,
        expires_at=expires_at,
        ref=ref,
        cancels_ref=ref if event in CANCELS_PENDING else None,
    )


def invoice_of(data: Mapping[str, Any]) -> str | None:
    """The invoice a trigger is about (``data["invoice_number"]``), if it names one."""
    number = data.get("invoice_number")
    if isinstance(number, str) and number.strip() and len(number) <= MAX_REF:
        return number.strip()
    return None


def _bulk(
    data: Mapping[str, Any],
    *,
    idempotency_key: str | None,
    template: str | None,
    priority: str | int | None,
) -> Bulk:
    """``bulk.send``: ``recipients`` [{whatsapp, data}], ``templateName``, ``templateData``."""
    name = template or data.get("templateName") or data.get("template")
    if not isinstance(name, str) or not name.strip():
        raise InvalidMessage("bulk.send data needs 'templateName', the template to send")
    shared = data.get("templateData", data.get("template_data"))
    if shared is not None and not isinstance(shared, Mapping):
        raise InvalidMessage("bulk.send 'templateData' must be a mapping shared by every recipient")
    recipients = data.get("recipients")
    if not isinstance(recipients, list) or not recipients:
        raise InvalidMessage("bulk.send data needs 'recipients', a non-empty list of {'whatsapp': ..., 'data': {...}}")
    return Bulk(
        recipients,
        template=name,
        template_data=shared,
        priority=priority if priority is not None else BULK_PRIORITY,
        idempotency_key=idempotency_key,
    )


def refused_recipient(event: object, data: object) -> str:
    """What a refused trigger's failed message names as its recipient: the number if given, else the event."""
    if isinstance(data, Mapping):
        number = data.get("customer_whatsapp") or data.get("to")
        if isinstance(number, str) and number.strip():
            return number
    return f"({event if isinstance(event, str) else '?'})"


def refused_priority(event: object, priority: object) -> int:
    """The priority step a refused trigger is recorded with: the one asked for, else the event's."""
    for candidate in (priority, BULK_PRIORITY if event == BULK_SEND else None, mapping().get(str(event))):
        value = candidate.priority if isinstance(candidate, Trigger) else candidate
        if value is None:
            continue
        try:
            return priorities.resolve(value)  # type: ignore[arg-type]
        except InvalidRequest:
            continue
    return priorities.LEVELS[priorities.DEFAULT]
