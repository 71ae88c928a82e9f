"""A message's way through the system: accepting it (submit, a template's composition, bulk jobs,
media, opt-outs, contacts), its states and outcomes (lifecycle, email fallback), incoming messages
and the sessions' live state in Redis. It may import ``wa_tasks.infra``, ``wa_tasks.core``,
``models``, ``wa_tasks.settings`` and ``wa_tasks.errors``; never ops, admin, the client, the task
module, the entry points or the session host (which imports the pipeline, not the other way).
"""
