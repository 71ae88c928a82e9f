"""Pure logic, the bottom of ``wa_tasks``' layers: phone numbers, priorities, routing, formatting,
template rendering, the built-in templates, QR codes, times, task names, Redis key names, the
transports' names and option schemas, billing triggers. It does no I/O: it may import
``wa_tasks.settings``, ``wa_tasks.errors`` and libraries without I/O, never ``models``, Redis,
SQLAlchemy, Celery, kombu, httpx, the session host or another layer of ``wa_tasks``.
"""
