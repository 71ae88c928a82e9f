"""A template's own send window in one process (``tests/support/inproc.py``): set through the thin
client, the HTTP API and the command line, checked with the settings' parser, and used instead of
its category's window both by the releaser and by the session host's claim."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from models import utcnow
from support.inproc import InProcess
from wa_tasks import client
from wa_tasks.core import windows
from wa_tasks.pipeline import schedule

NUMBER = "6281234567890"
WIB = windows.zone("Asia/Jakarta")


def closed_now() -> str:
    """A one-hour window two hours from now (Jakarta time): closed now, and for the next hour."""
    hour = utcnow().astimezone(WIB).hour
    return f"{(hour + 2) % 24:02d}:00-{(hour + 3) % 24:02d}:00"


def opening_of(window: str) -> dt.datetime:
    return windows.parse_window(window).next_opening(utcnow(), WIB).astimezone(dt.UTC)


def status_of(message_id: str) -> dict[str, object]:
    return client.status(message_id)


def test_the_host_holds_a_message_whose_template_window_is_closed_though_its_category_is_open(
    inproc: InProcess,
) -> None:
    window = closed_now()
    client.create_template("promo_sore", "Promo paket 50 Mbps bulan ini.", category="promotion", send_window=window)
    assert client.get_template("promo_sore")["sendWindow"] == window  # the promotion window is "always" here

    message_id = client.send(NUMBER, template="promo_sore", data={})
    inproc.wait_for(lambda: status_of(message_id)["status"] == "scheduled", "held for the template's window")

    view = status_of(message_id)
    assert view["sendAt"] == opening_of(window).isoformat().replace("+00:00", "Z")
    assert inproc.ledger() == [] and inproc.runner("wa-1").transport.sends == []
    # An untouched template of the same category goes at once
    client.create_template("promo_kapan_saja", "Promo voucher 1 hari.", category="promotion")
    inproc.settle(client.send(NUMBER, template="promo_kapan_saja", data={}), "delivered")


def test_the_releaser_uses_the_templates_window_both_ways(make_inproc: Callable[..., InProcess]) -> None:
    closed = closed_now()
    # Promotions closed by the setting: only a template's own window lets one go now
    inproc = make_inproc(window_promotion=closed)
    inproc.add_session("WA-1")
    client.create_template("promo_malam", "Promo malam ini.", category="promotion", send_window="always")
    client.create_template("promo_biasa", "Promo biasa.", category="promotion")
    due = utcnow() + dt.timedelta(minutes=5)
    anytime = client.send(NUMBER, template="promo_malam", data={}, send_at=due)
    usual = client.send("6281298765432", template="promo_biasa", data={}, send_at=due)
    assert status_of(anytime)["status"] == status_of(usual)["status"] == "scheduled"

    released = schedule.release(inproc.settings, inproc.app, now=lambda: due + dt.timedelta(seconds=1))

    assert (released.released, released.held) == (1, 1) and released.ids == [anytime]
    assert status_of(usual)["status"] == "scheduled"
    assert status_of(usual)["sendAt"] == opening_of(closed).isoformat().replace("+00:00", "Z")
    # And the host's claim, now, lets it go by the template's window too (its category's is closed)
    view = inproc.settle(anytime, "delivered")
    assert view["sessionId"] == "wa-1"
    assert [e.text for e in inproc.ledger()] == ["Promo malam ini."]


def test_the_api_sets_changes_clears_and_refuses_a_template_window(inproc: InProcess) -> None:
    url = "/api/whatsapp/templates/isolir_pagi"
    with inproc.api() as http:
        made = http.post(
            "/api/whatsapp/templates",
            json={"name": "isolir_pagi", "content": "Layanan Anda diisolir.", "sendWindow": "07:00-21:00"},
        )
        assert made.status_code == 201 and made.json()["sendWindow"] == "07:00-21:00", made.text

        bad = http.put(url, json={"sendWindow": "7-21"})
        assert bad.status_code == 422
        assert "send_window" in bad.text and "'7-21'" in bad.text
        assert http.get(url).json()["sendWindow"] == "07:00-21:00"  # nothing stored

        kept = http.put(url, json={"content": "Layanan Anda kami hentikan sementara."})
        assert kept.json()["sendWindow"] == "07:00-21:00"  # left out: unchanged
        cleared = http.put(url, json={"sendWindow": None})
        assert cleared.status_code == 200 and cleared.json()["sendWindow"] is None
        again = http.put(url, json={"sendWindow": "08:00-12:00,13:00-20:00"})
        assert again.json()["sendWindow"] == "08:00-12:00,13:00-20:00"
        assert http.put(url, json={"sendWindow": "category"}).json()["sendWindow"] is None


def test_the_command_line_sets_shows_and_clears_a_template_window(inproc: InProcess) -> None:
    made = inproc.cli(
        "templates", "create", "tagihan_siang", "--content", "Tagihan Anda.", "--category", "reminder", "--window",
        "10:00-16:00",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "send window: 10:00-16:00" in inproc.cli("templates", "show", "tagihan_siang").output

    refused = inproc.cli("templates", "update", "tagihan_siang", "--window", "siang")
    assert refused.exit_code != 0 and "'siang'" in refused.output and "Traceback" not in refused.output
    assert client.get_template("tagihan_siang")["sendWindow"] == "10:00-16:00"

    assert inproc.cli("templates", "update", "tagihan_siang", "--window", "category").exit_code == 0
    assert client.get_template("tagihan_siang")["sendWindow"] is None
    assert "send window: the category's" in inproc.cli("templates", "show", "tagihan_siang").output


def test_the_template_page_sets_shows_and_refuses_a_send_window(inproc: InProcess) -> None:
    form = {"name": "promo_pagi", "content": "Promo pagi.", "category": "promotion", "type": "text", "language": "id"}
    with inproc.api() as http:
        refused = http.post("/templates", data={**form, "send_window": "pagi"})
        assert refused.status_code == 422 and "send_window" in refused.text and "&#39;pagi&#39;" in refused.text
        assert 'value="pagi"' in refused.text  # the operator's input is kept in the form

        saved = http.post("/templates", data={**form, "send_window": "07:00-10:00"}, follow_redirects=False)
        assert saved.status_code in (302, 303), saved.text
        assert client.get_template("promo_pagi")["sendWindow"] == "07:00-10:00"
        assert 'value="07:00-10:00"' in http.get("/templates/promo_pagi").text

        cleared = http.post("/templates/promo_pagi", data={**form, "send_window": ""}, follow_redirects=False)
        assert cleared.status_code in (302, 303), cleared.text
    assert client.get_template("promo_pagi")["sendWindow"] is None
