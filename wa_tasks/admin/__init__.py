"""What an operator manages: session configuration (add, list, remove), stored templates, the view
of messages, queues and jobs, and the dashboard's figures. It may import ``wa_tasks.ops``,
``wa_tasks.pipeline`` and every layer below them; never the client, the task module, the entry
points or the session host (a session's transport options are checked by ``wa_tasks.core``).
"""
