"""Pure logic: numbers, priorities, routing, formatting, template rendering, Redis key names, task
names, transport names and option schemas, triggers. No I/O: it may import ``wa_tasks.settings``,
``wa_tasks.errors`` and libraries that do no I/O, never Redis, SQLAlchemy, Celery, kombu, httpx,
``models`` or another layer of ``wa_tasks``."""
