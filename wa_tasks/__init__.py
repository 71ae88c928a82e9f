"""wa-tasks: multi-session WhatsApp notifications for ISP billing, on Celery and Redis.

Billing code uses the thin client: ``from wa_tasks import client; client.send(...)``.
"""

__version__ = "0.1.0"
