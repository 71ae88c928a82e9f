"""The management pages in a real headless browser (Debian's chromium through Playwright), against
a real ``wa-tasks web`` process, worker and session host: log in, link a session by QR and pairing
code, watch messages reach ``delivered`` and retry a failed one, edit a template with its live
preview, read the dashboard's charts. Nothing is reloaded where the page claims to update live.

Screenshots of every page go to ``tests/artifacts/pages/`` (gitignored). With
``WA_UPDATE_SCREENSHOTS=1`` they are also copied to ``docs/screenshots/`` for the README.

The browser tests run on SQLite only: the pages' queries are tested on both backends by their own
modules (test_dashboard, the API's tests); here the browser is the slow part.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from models import Message, utcnow
from models.db import session_scope
from support.stack import Stack
from support.web import API_KEY, running_web
from wa_tasks.admin import dashboard, template_store
from wa_tasks.admin import session_config as manage
from wa_tasks.core import redis_keys
from wa_tasks.infra.redis_client import client_for
from wa_tasks.settings import Settings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts" / "pages"
DOCS = ROOT / "docs" / "screenshots"
#: Long enough for a poll (2 s), a send and its receipts on the simulated network.
LIVE = 20_000


#: Debian's chromium (Playwright's own browser download needs the internet).
CHROMIUM = os.environ.get("WA_TEST_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"the page tests need chromium at {CHROMIUM}: apt-get install chromium, or set WA_TEST_CHROMIUM")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    # Console errors, except the browser's note on a form answered 401/422 (a wrong key, a bad field).
    tab.on(
        "console",
        lambda m: errors.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text else None,
    )
    # Every asset loads, and no request is ever answered with a server error.
    tab.on(
        "response",
        lambda r: (
            errors.append(f"{r.status} {r.url}")
            if r.status >= 500 or ("/static/" in r.url and r.status >= 400)
            else None
        ),
    )
    # A request the browser itself aborted (still in flight when the page navigated or the test closed
    # it: the favicon, typically) is not an asset that failed to load.
    tab.on(
        "requestfailed",
        lambda r: (
            errors.append(f"failed {r.url}: {r.failure}")
            if "/static/" in r.url and "ERR_ABORTED" not in str(r.failure)
            else None
        ),
    )
    try:
        yield tab
    finally:
        context.close()
    # A script error (or a CSP refusal) on any page fails the test that showed it.
    assert errors == []


@pytest.fixture
def web(stack: Stack, tmp_path: Path) -> Iterator[str]:
    with running_web(stack.settings, tmp_path / "web-logs") as base:
        yield base


def shot(page: Page, name: str, *, docs: bool = True) -> Path:
    """A full-page screenshot as a test artifact; ``docs``: one of the README's (see module docstring)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if docs and os.environ.get("WA_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS / path.name)
    return path


def log_in(page: Page, base: str, path: str = "/sessions") -> None:
    page.goto(base + path)
    expect(page).to_have_url(f"{base}/login?next={path}")
    page.fill("input[name=key]", API_KEY)
    page.click("button:has-text('Log in')")
    expect(page).to_have_url(base + path)


def stays_loaded(page: Page) -> None:
    """Mark this page load; ``still_same_load`` is true only while the page was not reloaded."""
    page.evaluate("window.__sameLoad = true")


def still_same_load(page: Page) -> bool:
    return bool(page.evaluate("window.__sameLoad === true"))


def test_log_in_add_a_session_link_it_by_qr_and_code_then_operate_it(stack: Stack, web: str, page: Page) -> None:
    # Given a running stack without sessions, the pages ask for the API key
    stack.start()
    page.goto(web + "/sessions")
    expect(page).to_have_url(f"{web}/login?next=/sessions")
    page.fill("input[name=key]", "wrong")
    page.click("button:has-text('Log in')")
    expect(page.locator(".notice.bad")).to_have_text("That is not the API key.")
    shot(page, "login", docs=False)
    page.fill("input[name=key]", API_KEY)
    page.click("button:has-text('Log in')")
    expect(page).to_have_url(web + "/sessions")
    expect(page.locator(".empty")).to_contain_text("No sessions yet")

    # When the operator adds a simulated session that is linked by QR code
    page.fill("input[name=device_id]", "WA-1")
    page.fill("input[name=priority]", "1")
    page.check("input[name=pairing][value=qr]")
    page.click("button:has-text('Add session')")

    # Then its link page shows the QR code the session host shows, and follows it as it rotates
    expect(page).to_have_url(web + "/sessions/wa-1/link")
    qr = page.locator("img.qr")
    expect(qr).to_be_visible(timeout=LIVE)
    first = qr.get_attribute("src")
    assert first and first.startswith("data:image/png;base64,")
    stays_loaded(page)
    rotated = f"2@{'f' * 32},rotated,wa-1"
    stack.redis.hset(redis_keys.session_qr("wa-1"), mapping={"code": rotated, "expires_at": time.time() + 20})
    expect(qr).not_to_have_attribute("src", first, timeout=LIVE)
    assert still_same_load(page)
    shot(page, "session-qr")

    # And a pairing code can be asked for instead (8 characters, shown as XXXX-XXXX)
    page.fill("input[name=phone]", "0812-3456-7890")
    page.click("button:has-text('Get a pairing code')")
    code = page.locator(".pair-code")
    expect(code).to_have_text(re.compile(r"^[A-Z0-9]{4}-[A-Z0-9]{4}$"))

    # When the phone confirms, the page turns connected without a reload
    stays_loaded(page)
    stack.simnet.scan("wa-1")
    expect(page.locator("#qr-live [data-status=connected]")).to_be_visible(timeout=LIVE)
    assert still_same_load(page)

    # Then the sessions page lists it connected (green) and primary
    page.goto(web + "/sessions")
    row = page.locator("tr[data-session=wa-1]")
    expect(row.locator(".status")).to_have_text("connected")
    expect(row.locator(".status")).to_have_class(re.compile("st-ok"))
    expect(row.locator(".tag.primary")).to_be_visible()
    shot(page, "session-linked", docs=False)

    # And a tab in the background stops polling until it is shown again
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/sessions/table" in r.url else None)
    show = "Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => '%s'})"
    page.evaluate(show % "hidden")
    page.wait_for_timeout(500)  # a poll already on its way
    polls.clear()
    page.wait_for_timeout(4500)
    assert polls == [], polls
    page.evaluate(show % "visible")
    page.wait_for_timeout(2500)
    assert polls, "polling did not resume when the tab was shown again"

    # When the operator changes its priority and pace, the table shows them and it stays linked
    change = page.locator("#update-session")
    change.locator("input[name=priority]").fill("4")
    change.locator("input[name=pace_seconds]").fill("2")
    change.locator("button:has-text('Save')").click()
    expect(page.locator(".notice.ok")).to_contain_text("session wa-1: priority 4, pace 2 s")
    expect(row.locator("td[data-label=Priority]")).to_have_text("4")
    assert manage.view(stack.settings, "wa-1")["paceSeconds"] == 2.0
    # (the host applies each new pace to the running session, no reconnect; waiting for it before the
    # next change, as a change undone within one heartbeat is, rightly, never seen by the host)
    stack.wait_for_log("sessions", "session wa-1: now 2.00s between sends", timeout=LIVE / 1000)
    change.locator("input[name=default_pace]").check()
    change.locator("button:has-text('Save')").click()
    expect(page.locator(".notice.ok")).to_contain_text("pace the default")
    applied = f"session wa-1: now {stack.settings.pace_seconds:.2f}s between sends"
    stack.wait_for_log("sessions", applied, timeout=LIVE / 1000)
    # And when they give the day the number started using WhatsApp, its host warms it up by that age
    change.locator("input[name=number_since]").fill("2019-05-01")
    change.locator("button:has-text('Save')").click()
    expect(page.locator(".notice.ok")).to_contain_text("on WhatsApp since 2019-05-01")
    stack.wait_for_log("sessions", "session wa-1: number ", timeout=LIVE / 1000)
    assert "session wa-1 stopped" not in stack.log_text("sessions")
    expect(row.locator(".status")).to_have_text("connected")

    # When the operator logs it out (confirming), it turns logged out (red) without a reload
    page.on("dialog", lambda dialog: dialog.accept())
    row.locator("button:has-text('Log out')").click()
    expect(page.locator(".notice.ok")).to_contain_text("logged out")
    stays_loaded(page)
    expect(row.locator("[data-status=logged_out]")).to_be_visible(timeout=LIVE)
    expect(row.locator(".status")).to_have_class(re.compile("st-bad"))
    assert still_same_load(page)

    # And Reconnect brings a new QR code to scan; Remove deletes the session
    row.locator("button:has-text('Reconnect')").click()
    expect(page.locator(".notice.ok")).to_contain_text("reconnecting")
    expect(row.locator("a:has-text('Link device')")).to_be_visible(timeout=LIVE)
    row.locator("button:has-text('Remove')").click()
    expect(page.locator(".notice.ok")).to_contain_text("session wa-1 removed")
    expect(page.locator(".empty")).to_contain_text("No sessions yet")
    assert manage.listing(stack.settings) == []

    # And an error is a readable notice, not JSON or a 500
    page.fill("input[name=device_id]", "WA-1")
    page.click("summary:has-text('More')")
    page.fill("input[name=session_id]", "bad id")
    page.evaluate("document.querySelector('input[name=session_id]').removeAttribute('pattern')")
    page.click("button:has-text('Add session')")
    expect(page.locator(".notice.bad")).to_contain_text("must be 1-63 characters")


def test_the_queue_follows_messages_to_delivered_retries_a_failed_one_and_cancels_a_bulk_job(
    stack: Stack, web: str, page: Page
) -> None:
    settings = stack.settings
    template_store.create(settings, "greeting", "Halo {{name}}, tagihan Anda sudah terbit.")
    stack.add_session("wa-1", priority=1)
    stack.add_session("wa-2", priority=2)
    # Given a bulk job queued while no worker runs (so nothing of it is sent yet)
    job_id = stack.client.send_bulk(
        [{"whatsapp": f"0813{i:08d}", "data": {"name": f"Pelanggan {i}"}} for i in range(5)], template="greeting"
    )
    log_in(page, web, "/queue")
    job = page.locator(f"[data-job={job_id}]")
    expect(job).to_contain_text("5 waiting")

    # When the operator cancels it, its unsent messages are cancelled and its bar says so
    page.on("dialog", lambda dialog: dialog.accept())
    job.locator("button:has-text('Cancel')").click()
    expect(page.locator(".notice.ok")).to_contain_text("5 unsent message(s) will not be sent")
    expect(job).to_contain_text("5 cancelled")
    expect(job.locator(".status")).to_have_text("cancelled")

    # Given a running stack, and one number that is not on WhatsApp
    stack.simnet.set_not_on_whatsapp("6281200000002")
    stack.start()
    stack.wait_connected("wa-1", "wa-2")
    stays_loaded(page)

    # When billing sends a template through the API, the queue page follows it to delivered
    sent = httpx.post(
        f"{web}/api/whatsapp/send",
        headers={"X-API-Key": API_KEY},
        json={"to": "0812-0000-0001", "template": "greeting", "data": {"name": "Budi"}},
    )
    assert sent.status_code == 202, sent.text
    good = page.locator(f"tr[data-message={sent.json()['id']}]")
    expect(good.locator("[data-status=delivered], [data-status=read]")).to_be_visible(timeout=LIVE)
    expect(good.locator(".status")).to_have_class(re.compile("st-ok"))

    # And a send that fails shows its error (red) and a Retry button, still without a reload
    failing = stack.client.send("0812-0000-0002", template="greeting", data={"name": "Sari"})
    bad = page.locator(f"tr[data-message={failing}]")
    expect(bad.locator("[data-status=failed]")).to_be_visible(timeout=LIVE)
    expect(bad.locator(".error-text")).to_contain_text("is not on WhatsApp")
    assert still_same_load(page)
    shot(page, "queue")

    # Filters narrow the list to one status, and to one number
    page.select_option("select[name=status]", "failed")
    page.click("button:has-text('Filter')")
    expect(page.locator("tr[data-message]")).to_have_count(1)
    page.goto(web + "/queue?to=0812-0000-0001")
    expect(page.locator("tr[data-message]")).to_have_count(1)
    expect(page.locator(f"tr[data-message={sent.json()['id']}]")).to_be_visible()

    # When the number is on WhatsApp after all and the operator retries, it is delivered
    stack.simnet.set_not_on_whatsapp("6281200000002", absent=False)
    page.goto(web + "/queue?status=failed")
    page.locator(f"tr[data-message={failing}] button:has-text('Retry')").click()
    expect(page.locator(".notice.ok")).to_contain_text("queued again")
    expect(page).to_have_url(web + "/queue?status=failed")  # back where the operator was
    stack.wait_status(failing, "delivered", "read", timeout=30)
    page.goto(web + "/queue")
    expect(
        page.locator(
            f"tr[data-message={failing}] [data-status=delivered], tr[data-message={failing}] [data-status=read]"
        )
    ).to_be_visible(timeout=LIVE)

    # With a third session waiting for its QR scan and the second one's connection lost, the
    # sessions page shows each state in its colour
    stack.add_session("wa-3", priority=3, options={"auto_pair": False})
    stack.simnet.drop("wa-2")
    page.goto(web + "/sessions")
    expect(page.locator("tr[data-session=wa-3] .status.st-wait")).to_have_text("waiting for scan", timeout=LIVE)
    expect(page.locator("tr[data-session=wa-2] .status")).not_to_have_text("connected", timeout=LIVE)
    shot(page, "sessions")

    # On a phone (390 px) the page stays readable: no horizontal scrolling of the page itself
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(web + "/queue")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "queue-390px", docs=False)
    page.goto(web + "/sessions")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "sessions-390px")


def test_editing_a_template_shows_a_live_preview_and_saves_it(stack: Stack, web: str, page: Page) -> None:
    template_store.install_defaults(stack.settings)
    log_in(page, web, "/templates")
    row = page.locator("tr", has=page.locator("a:has-text('payment_reminder')"))
    expect(row.locator(".status")).to_have_text("active")
    shot(page, "templates")

    # When the operator edits a template's content, the preview follows as they type
    row.locator("a:has-text('Edit')").click()
    expect(page).to_have_url(web + "/templates/payment_reminder")
    preview = page.locator("#preview")
    expect(preview.locator("[data-testid=preview-text]")).to_contain_text("Halo")
    stays_loaded(page)
    content = page.locator("textarea[name=content]")
    content.fill("Halo {{customer_name}}, bayar di https://bayar.example/{{invoice_number}} ya")
    # Then it lists the variables and what the sample lacks, and warns about the link
    expect(preview.locator("[data-testid=preview-missing]")).to_contain_text("customer_name, invoice_number")
    expect(preview.locator("[data-testid=preview-warning]")).to_contain_text("link")
    page.locator("textarea[name=sample]").fill("customer_name: Budi\ninvoice_number: INV-7")
    expect(preview.locator("[data-testid=preview-text]")).to_have_text(
        "Halo Budi, bayar di https://bayar.example/INV-7 ya"
    )
    expect(preview.locator("[data-testid=preview-missing]")).to_have_count(0)
    # A template error is shown in words in the preview, not raised
    content.fill("Halo {{customer_name")
    expect(preview.locator(".notice.bad")).to_be_visible()
    content.fill("Halo {{customer_name}}, bayar di https://bayar.example/{{invoice_number}} ya")
    expect(preview.locator("[data-testid=preview-text]")).to_contain_text("INV-7")
    assert still_same_load(page)
    shot(page, "template-edit")

    # When saved, the list shows the new variables; a bad save explains itself
    page.click("button:has-text('Save template')")
    expect(page.locator(".notice.ok")).to_contain_text("template payment_reminder saved")
    saved = template_store.get(stack.settings, "payment_reminder")
    assert saved["variables"] == ["customer_name", "invoice_number"]
    page.goto(web + "/templates/new")
    page.fill("input[name=name]", "welcome")
    page.select_option("select[name=category]", "promotion")
    page.fill("textarea[name=content]", "Selamat datang, {{customer_name}}!")
    expect(preview.locator("[data-testid=preview-missing]")).to_contain_text("customer_name")
    page.click("button:has-text('Save template')")
    expect(page).to_have_url(web + "/templates/welcome")
    created = template_store.get(stack.settings, "welcome")
    assert (created["category"], created["variables"]) == ("promotion", ["customer_name"])
    page.goto(web + "/templates/new")
    page.fill("input[name=name]", "payment_reminder")
    page.fill("textarea[name=content]", "Halo")
    page.click("button:has-text('Save template')")
    expect(page.locator(".notice.bad")).to_contain_text("already exists")

    # A form sent from another site is refused, and so is one without the login
    forged = page.request.post(
        f"{web}/templates/payment_reminder/deactivate", headers={"Origin": "http://evil.example"}
    )
    assert forged.status == 403 and "must be sent from the wa-tasks pages" in forged.text()
    anonymous = httpx.post(f"{web}/templates/payment_reminder/deactivate", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    assert template_store.get(stack.settings, "payment_reminder")["isActive"] is True
    # An unknown page is a page that says so, not JSON
    page.goto(web + "/sessions/nope/link")
    expect(page.locator(".notice.bad")).to_contain_text("there is no session 'nope'")

    # And deactivating (confirmed) marks it inactive
    page.goto(web + "/templates")
    page.on("dialog", lambda dialog: dialog.accept())
    row.locator("button:has-text('Deactivate')").click()
    expect(page.locator(".notice.ok")).to_contain_text("deactivated")
    expect(row.locator(".status")).to_have_text("inactive")
    assert template_store.get(stack.settings, "payment_reminder")["isActive"] is False


def _seed_history(settings: Settings) -> dict[str, int]:
    """A day of sends on two numbers (with receipts and failures) and depth samples; returns the
    outcome totals the sends chart must show."""
    rng = random.Random(7)
    now = utcnow()
    for sid, prio in (("wa-1", 1), ("wa-2", 2)):
        manage.add(settings, device_id=sid.upper(), session_id=sid, priority=prio)
    totals = {k: 0 for k in dashboard.OUTCOMES}
    first_hour = dashboard.hour_slots(now)[0]
    rows = []
    for hours_ago in range(23, -1, -1):
        for sid, scale in (("wa-1", 12), ("wa-2", 4)):
            for _ in range(rng.randint(scale // 2, scale)):
                sent_at = now - dt.timedelta(hours=hours_ago, minutes=rng.uniform(0, 50))
                if sent_at < first_hour:
                    continue  # before the chart's first hour
                latency = dt.timedelta(seconds=rng.lognormvariate(0.6, 0.5))
                kind = rng.choices(dashboard.OUTCOMES, weights=(1, 5, 8, 0.6))[0]
                totals[kind] += 1
                rows.append(
                    Message(
                        session_id=sid,
                        to_number=f"62812{rng.randint(10**7, 10**8 - 1)}",
                        content="x",
                        status=kind,
                        priority=5,
                        created_at=sent_at - dt.timedelta(seconds=2),
                        sent_at=None if kind == "failed" else sent_at,
                        delivered_at=sent_at + latency if kind in ("delivered", "read") else None,
                        read_at=sent_at + latency * 3 if kind == "read" else None,
                        failed_at=sent_at if kind == "failed" else None,
                        error_message="not_on_whatsapp: the number has no WhatsApp" if kind == "failed" else None,
                    )
                )
    with session_scope(settings.database) as db:
        db.add_all(rows)
    # Six hours of depth samples, 10 min apart: record_depth measures the real queue lists, so they
    # are filled to each depth (rising and falling), sampled, and emptied again.
    redis = client_for(settings.redis)
    start = time.time() - 6 * 3600
    for i in range(36):
        depths = {"wa-1": int(30 * abs((i / 6) % 2 - 1)), "wa-2": rng.randint(0, 5)}
        for sid, depth in depths.items():
            redis.delete(redis_keys.session_queue(sid))
            if depth:
                redis.rpush(redis_keys.session_queue(sid), *[json.dumps({"n": n}) for n in range(depth)])
        assert dashboard.record_depth(redis, ["wa-1", "wa-2"], start + i * 600) == depths
    redis.delete(*[redis_keys.session_queue(sid) for sid in ("wa-1", "wa-2")])
    return totals


def test_the_dashboard_draws_its_charts(stack: Stack, web: str, page: Page) -> None:
    totals = _seed_history(stack.settings)
    log_in(page, web, "/dashboard")

    # Then one sends chart per number, stacked by outcome, adds up to what was sent
    expect(page.locator("canvas[data-chart=sends]")).to_have_count(2)
    drawn = page.evaluate(
        """() => {
          const sum = (xs) => xs.reduce((a, b) => a + (b || 0), 0);
          const out = {};
          document.querySelectorAll('canvas[data-chart=sends]').forEach((c) => {
            Chart.getChart(c).data.datasets.forEach((d) => { out[d.label] = (out[d.label] || 0) + sum(d.data); });
          });
          return out;
        }"""
    )
    assert drawn == totals
    # And the depth and latency charts are drawn from the samples and the deliveries
    depth_points = page.evaluate(
        "Chart.getChart(document.querySelector('canvas[data-chart=depth]')).data.datasets.map(d => d.data.length)"
    )
    assert depth_points == [36, 36]
    p95 = page.evaluate("Chart.getChart(document.querySelector('canvas[data-chart=latency]')).data.datasets[1].data")
    assert sum(1 for v in p95 if v is not None) >= 20 and all(v is None or v > 0 for v in p95)
    expect(page.locator("a:has-text('Flower')").first).to_have_attribute(
        "href", f"http://127.0.0.1:{stack.settings.flower_port}/"
    )
    shot(page, "dashboard")


def test_with_redis_down_the_pages_say_so_in_words(settings: Settings, tmp_path: Path) -> None:
    # Given a web process whose Redis does not answer (no key: loopback, open pages)
    manage.add(settings, device_id="WA-1", session_id="wa-1", priority=1)
    broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    with running_web(broken, tmp_path / "web-logs", api_key=None) as base, httpx.Client(base_url=base) as http:
        # Then the queue page says what is wrong, and the sessions page still lists the session, offline
        queue = http.get("/queue")
        assert queue.status_code == 200 and queue.headers["content-type"].startswith("text/html")
        assert "cannot read the queue" in queue.text and "is the database or Redis down?" in queue.text
        sessions = http.get("/sessions")
        assert sessions.status_code == 200 and 'data-status="offline"' in sessions.text
        # And an action that needs Redis comes back to the page with a notice, not a 500
        logout = http.post("/sessions/wa-1/logout", follow_redirects=True)
        assert logout.status_code == 200 and "could not do that (ConnectionError" in logout.text
        assert "redis://" not in logout.text  # the details stay in the log
