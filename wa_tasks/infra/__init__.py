"""The processes' plumbing: the Celery app and its broker fix, the Redis client and the embedded
redis-server, logging, and requeueing a dead worker's tasks. It may import ``wa_tasks.core``,
``models``, ``wa_tasks.settings`` and ``wa_tasks.errors``; nothing above it."""
