"""Errors raised to callers. Each message says what was wrong and what to do about it."""

from __future__ import annotations


class WaTasksError(Exception):
    """Base class of every error wa-tasks raises on purpose."""

    #: A short machine-readable reason, stored on a message that a task refused.
    code = "error"


class InvalidRequest(WaTasksError, ValueError):
    """The caller asked for something that cannot be sent; nothing was queued."""

    code = "invalid_request"


class InvalidPhoneNumber(InvalidRequest):
    code = "invalid_phone_number"


class InvalidMessage(InvalidRequest):
    code = "invalid_message"


class InvalidPriority(InvalidRequest):
    code = "invalid_priority"


class UnknownSession(InvalidRequest):
    code = "unknown_session"


class UnknownTemplate(InvalidRequest):
    code = "unknown_template"


class TemplateRenderError(InvalidRequest):
    code = "template_error"


class MessageNotFound(WaTasksError, LookupError):
    code = "message_not_found"


class InvalidTemplate(InvalidRequest):
    """A template that cannot be saved (bad name, category, type or content)."""

    code = "invalid_template"


class UnknownEvent(InvalidRequest):
    """A notification trigger for an event nobody mapped to a template."""

    code = "unknown_event"


class MissingRecipient(InvalidRequest):
    """Trigger data without the customer's WhatsApp number."""

    code = "missing_recipient"


class OptedOut(InvalidRequest):
    """The customer replied STOP: promotions are no longer sent to this number."""

    code = "opted_out"
