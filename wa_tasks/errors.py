"""Errors raised to callers. Each message says what was wrong and what to do about it."""

from __future__ import annotations


class WaTasksError(Exception):
    """Base class of every error wa-tasks raises on purpose.

    The message (``str(exc)``) tells the caller what they sent, their own data included: it is
    what the exception, the API's answer and a refused task's stored error say. ``loggable`` is
    the same message as a log line may show it, with a customer's phone number masked."""

    #: A short machine-readable reason, stored on a message that a task refused.
    code = "error"

    def __init__(self, *args: object, loggable: str | None = None) -> None:
        super().__init__(*args)
        self._loggable = loggable

    @property
    def loggable(self) -> str:
        """The message with what a log line must not show masked (the message itself when it
        quotes nothing of a customer's)."""
        return self._loggable if self._loggable is not None else str(self)


class InvalidRequest(WaTasksError, ValueError):
    """The caller asked for something that cannot be sent; nothing was queued."""

    code = "invalid_request"


class InvalidPhoneNumber(InvalidRequest):
    code = "invalid_phone_number"


class InvalidMessage(InvalidRequest):
    code = "invalid_message"


class InvalidPriority(InvalidRequest):
    code = "invalid_priority"


class InvalidSchedule(InvalidRequest):
    """A time the message cannot be scheduled by: a naive datetime, an unknown time zone, a send
    window or reminder-ladder step that does not parse, a notice key that is too long."""

    code = "invalid_schedule"


class InvalidCallbackUrl(InvalidRequest):
    """A ``callback_url`` (``callbackUrl``) that is not an http(s) URL, or points where status
    events may not go (loopback, private or link-local addresses, unless ``WA_WEBHOOK_ALLOW_PRIVATE``)."""

    code = "invalid_callback_url"


class NotFound(WaTasksError, LookupError):
    """An id names nothing: no such session, message, bulk job or template (answered 404)."""

    code = "not_found"


class UnknownSession(InvalidRequest, NotFound):
    # A request naming it is refused as invalid (422); a path naming it is answered 404.
    code = "unknown_session"


class UnknownTemplate(InvalidRequest, NotFound):
    code = "unknown_template"


class TemplateRenderError(InvalidRequest):
    code = "template_error"


class UnknownApiKey(InvalidRequest, NotFound):
    """No API key with that id."""

    code = "unknown_api_key"


class MessageNotFound(NotFound):
    code = "message_not_found"


class UnknownWebhookEvent(NotFound):
    code = "unknown_webhook_event"


class UnknownJob(NotFound):
    code = "unknown_job"


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


class Conflict(WaTasksError, RuntimeError):
    """The thing exists but cannot do that now (answered 409)."""

    code = "conflict"

    def __init__(self, message: str, code: str = "conflict") -> None:
        super().__init__(message)
        self.code = code


class CommandFailed(WaTasksError, RuntimeError):
    """The owning host refused or could not do the command (its reason is in the message)."""

    code = "command_failed"


class HostUnavailable(CommandFailed):
    """No session host is running, or none answered for the session in time."""

    code = "host_unavailable"


class MediaError(WaTasksError):
    """The media could not be fetched or is not acceptable (the message fails)."""

    code = "media_error"
