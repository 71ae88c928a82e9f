"""The dashboard (today's figures and the charts of the last days), which ``/`` leads to."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from wa_tasks.admin import dashboard
from wa_tasks.ops import metrics
from wa_tasks.settings import get_settings
from wa_tasks.web.pages.common import fault, pages, render


@pages.get("/")
def index() -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=303)


@pages.get("/dashboard")
def dashboard_page(request: Request) -> HTMLResponse:
    settings = get_settings()
    error = None
    try:
        charts = dashboard.charts(settings)
        today = metrics.stats(settings)
    except Exception as exc:
        charts, today, error = None, None, "cannot read the figures: " + fault(exc, "dashboard")
    return render(request, "dashboard.html", charts=charts, today=today, error=error)
