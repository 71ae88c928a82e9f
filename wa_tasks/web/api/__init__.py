"""The HTTP API under ``/api/whatsapp`` (the paths and JSON shapes billing systems call, plus what operators need).

Every route needs the API key (see ``auth``); ``POST /send`` also takes a send-scoped key.
Bad input is a 422 that names the field and says why;
an unknown id in the path is a 404; a session host that does not answer is a 503; none of them is
ever a 500. The work is done by the domain modules (``client``, ``sessions``, ``session_control``,
``bulk``, ``template_store``, ``queue_view``); these modules only map HTTP onto them, one per
resource, with their request and answer shapes in ``schemas`` and what they share in ``deps``.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from wa_tasks.web.api import compat, messages, queue, sessions, templates, webhooks
from wa_tasks.web.api.deps import ERRORS
from wa_tasks.web.auth import require_key, require_send

router = APIRouter(prefix="/api/whatsapp", tags=["whatsapp"], responses=ERRORS)
full_key = [Depends(require_key)]

# In this order the paths appear in the OpenAPI schema (and in the docs generated from it).
router.include_router(sessions.router, dependencies=full_key)
router.include_router(messages.send_router, dependencies=[Depends(require_send)])
router.include_router(messages.router, dependencies=full_key)
router.include_router(queue.router, dependencies=full_key)
router.include_router(templates.router, dependencies=full_key)
router.include_router(webhooks.router, dependencies=full_key)

#: The drop-in endpoints under ``/compat`` (their own auth: the key may be in the URL).
compat_router = compat.router
