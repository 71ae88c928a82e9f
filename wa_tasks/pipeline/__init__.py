"""A message's way through the system: accepting it (submit, bulk, media, opt-outs, contacts), its
states and outcomes (lifecycle, fallback), incoming messages and the sessions' live state in Redis.
It may import ``wa_tasks.infra``, ``wa_tasks.core``, ``models``, ``wa_tasks.settings`` and
``wa_tasks.errors``; never admin, ops, the client, the task module, the entry points or the host."""
