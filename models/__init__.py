"""SQLAlchemy 2.0 models of wa-tasks and the engine/session helpers (PostgreSQL or SQLite)."""

from models.api_key import ApiKey
from models.base import Base, utcnow
from models.contact import KnownContact, WhatsAppContact
from models.daily_metric import DailyMetric
from models.incoming import IncomingMessage
from models.message import Message, new_message_id
from models.opt_out import OptOut
from models.queue_job import QueueJob
from models.session import WhatsAppSession
from models.statuses import PENDING, SENT_OR_FINAL, JobStatus, MessageStatus, SessionStatus
from models.template import Template
from models.webhook_event import DEAD_EVENT, DELIVERED_EVENT, PENDING_EVENT, WebhookEvent

__all__ = [
    "ApiKey",
    "IncomingMessage",
    "SENT_OR_FINAL",
    "Base",
    "DailyMetric",
    "JobStatus",
    "KnownContact",
    "Message",
    "MessageStatus",
    "OptOut",
    "PENDING",
    "QueueJob",
    "SessionStatus",
    "Template",
    "WhatsAppContact",
    "WhatsAppSession",
    "WebhookEvent",
    "PENDING_EVENT",
    "DELIVERED_EVENT",
    "DEAD_EVENT",
    "new_message_id",
    "utcnow",
]
