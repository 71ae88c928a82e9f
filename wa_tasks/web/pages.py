"""The management pages (seed §3.1 ``views/whatsapp/``): server-rendered HTML for operators.

Every page needs a login with the API key when one is configured (see ``auth``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.responses import RedirectResponse
from fastapi.templating import Jinja2Templates

from wa_tasks.web.auth import require_login

HERE = Path(__file__).parent
#: Jinja2 environment of the pages (``templates/``); assets are served from ``static/``.
templates = Jinja2Templates(directory=HERE / "templates")

router = APIRouter(dependencies=[Depends(require_login)], include_in_schema=False)


@router.get("/")
def index() -> RedirectResponse:
    return RedirectResponse("/sessions", status_code=303)
