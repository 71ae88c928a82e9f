"""The processes' plumbing: the Celery app and its broker fix, the Redis client and the embedded
redis-server, logging, commands to the session host over Redis, and the return of a dead worker's
tasks. It may import ``wa_tasks.core``, ``models``, ``wa_tasks.settings`` and ``wa_tasks.errors``;
nothing above it (pipeline, ops, admin, the client, the tasks, the entry points, the session host).
"""
