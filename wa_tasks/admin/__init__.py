"""What an operator manages: session configuration and control (pair, pause, resume), stored
templates, the queue view and the dashboard's figures. It may import ``wa_tasks.pipeline`` and
everything below it; never the client, the task module, the entry points or the session host."""
