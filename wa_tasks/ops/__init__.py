"""Running the installation: the beat scheduler, session health checks, retention, daily metrics
and encryption keys (generation and rotation). It may import ``wa_tasks.pipeline`` and every layer
below it; never admin, the client, the task module, the entry points or the session host.
"""
