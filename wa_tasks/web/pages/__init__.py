"""The management pages: server-rendered HTML for operators.

Dashboard, sessions (QR and pairing code), templates (live preview) and queue (messages, depths,
bulk jobs). Live parts are partial templates (``templates/_*.html``) that htmx polls every couple
of seconds; every form also works without JavaScript (POST, then a redirect with a notice).

Every page needs a login with the API key when one is configured (see ``auth``). A state-changing
POST must come from these pages: its ``Origin`` (or ``Referer``) must be this server, which stops
another site from driving an operator's browser even when no key is set (loopback installs).
Errors are shown as notices in words, never as JSON or a 500.

One module per page group; what they share (rendering, the checks of every form, the route class
that makes every failure a page) is in ``common``.
"""

from __future__ import annotations

# Each page module adds its routes to ``common.router`` or ``common.pages`` when it is imported (two
# routers that hold the routes themselves, which is what callers listing ``router.routes`` see).
from wa_tasks.web.pages import dashboard, login, queue, sessions, templates  # noqa: F401
from wa_tasks.web.pages.common import pages, router

router.include_router(pages)
