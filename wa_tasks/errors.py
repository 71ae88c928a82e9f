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
