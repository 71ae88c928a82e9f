"""The ``web`` process: the HTTP API (``api``) for billing systems and the management pages
(``pages``) for operators, served by one ASGI app (``app``) with Prometheus ``/metrics``."""
