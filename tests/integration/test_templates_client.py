"""Templates, previews, opt-out refusals and media/interactive requests through the thin client and
the CLI, against a real database and Redis (no worker needed): what is stored, what is published,
and that refused requests and previews store and publish nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis as redis_lib
from sqlalchemy import delete, func, select

from models import Message, OptOut, Template
from models.db import session_scope
from support.billing_samples import PNG_1PX
from support.stack import settings_env
from support.web import API_KEY, running_web
from wa_tasks import errors
from wa_tasks.client import Client
from wa_tasks.core.default_templates import DEFAULTS
from wa_tasks.pipeline import optout
from wa_tasks.settings import Settings

pytestmark = pytest.mark.integration

PROMO = "Promo {{ bulan }}: kecepatan 2x lipat untuk pelanggan setia! Balas STOP untuk berhenti."


@pytest.fixture
def client(settings: Settings) -> Client:
    with session_scope(settings.database) as db:
        db.execute(delete(OptOut))
    return Client(settings)


def _rows(settings: Settings) -> int:
    with session_scope(settings.database) as db:
        return int(db.scalar(select(func.count()).select_from(Message)) or 0)


def _broker_keys(settings: Settings) -> list[str]:
    """Everything in Redis: the broker's queues included (tests flush it first)."""
    return sorted(k.decode() for k in redis_lib.Redis.from_url(settings.redis).keys("*"))


def test_templates_are_created_listed_updated_deactivated_and_checked(client: Client) -> None:
    created = client.create_template("tagihan_singkat", "Halo {{ nama }}, tagihan {{ jumlah|rupiah }}.")

    assert created["variables"] == ["jumlah", "nama"]  # extracted on save
    assert (created["category"], created["type"], created["language"], created["isActive"]) == (
        "notification",
        "text",
        "id",
        True,
    )
    assert [t["name"] for t in client.list_templates()] == ["tagihan_singkat"]

    updated = client.update_template("tagihan_singkat", content="Yth. {{ nama }}: {{ jumlah|rupiah }} ({{ periode }})")
    assert updated["variables"] == ["jumlah", "nama", "periode"]  # extracted again
    assert updated["updatedAt"] >= created["updatedAt"] and updated["category"] == "notification"

    client.deactivate_template("tagihan_singkat")
    assert client.get_template("tagihan_singkat")["isActive"] is False
    assert client.list_templates(include_inactive=False) == []
    with pytest.raises(errors.UnknownTemplate, match="inactive template 'tagihan_singkat'"):
        client.send("081234567890", template="tagihan_singkat", data={"nama": "A", "jumlah": 1, "periode": "Jan"})
    client.update_template("tagihan_singkat", is_active=True)
    client.send("081234567890", template="tagihan_singkat", data={"nama": "Ani", "jumlah": 99000, "periode": "Jan"})
    with session_scope(client.settings.database) as db:
        assert db.scalar(select(Message.content)) == "Yth. Ani: Rp99.000 (Jan)"

    # is_active=False is kept: a false value is not taken for a missing one (which means active)
    assert client.create_template("draf", "Draf", is_active=False)["isActive"] is False


@pytest.mark.parametrize(
    ("name", "content", "kwargs", "error", "words"),
    [
        ("ada spasi", "x", {}, errors.InvalidTemplate, "template name 'ada spasi' is not valid"),
        ("t", "x", {"category": "marketing"}, errors.InvalidTemplate, "category must be one of notification"),
        ("t", "x", {"type": "video"}, errors.InvalidTemplate, "type must be one of text, media, button, list"),
        ("t", "x", {"language": "Bahasa"}, errors.InvalidTemplate, "language must be a code"),
        ("t", "  ", {}, errors.InvalidTemplate, "content is empty"),
        ("t", "Halo\n{{ nama ", {}, errors.InvalidTemplate, "syntax error on line 2"),
        ("t", "{{ x|idr }}", {}, errors.InvalidTemplate, "No filter named 'idr'"),
        ("t", "x" * 4097, {}, errors.InvalidTemplate, "4097 characters"),
        ("payment_reminder", "x", {}, errors.InvalidTemplate, "already exists; change it with update"),
    ],
)
def test_a_bad_template_is_refused_with_what_is_wrong(
    client: Client, name: str, content: str, kwargs: dict[str, str], error: type[Exception], words: str
) -> None:
    client.install_default_templates()

    with pytest.raises(error, match=words):
        client.create_template(name, content, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(errors.UnknownTemplate, match="unknown template 'nope'"):
        client.update_template("nope", content="x")


#: Never ends without the render limits: 9,999 ** 3 loop iterations (each loop is under range()'s bound).
LOOPS = (
    "{% for i in range(9999) %}{% for j in range(9999) %}{% for k in range(9999) %}{% endfor %}{% endfor %}{% endfor %}"
)
#: Depends on its data: a few iterations with n=2, 10**8 with n=10000.
DATA_LOOPS = "Halo {{ nama }}{% for i in range(n) %}{% for j in range(n) %}.{% endfor %}{% endfor %}"


@pytest.mark.timeout(20)
def test_a_template_over_the_render_limits_is_refused_when_saved_sent_bulk_sent_and_previewed(client: Client) -> None:
    client.create_template("ulang", DATA_LOOPS)

    # Over the limits whatever the data: refused when saved, and the saved content is kept.
    for content, limit in [(LOOPS, "step"), ("{{ 'x' * 10**9 }}", "size")]:
        with pytest.raises(
            errors.InvalidTemplate, match=f"template 'bom' could not be rendered: over the {limit} limit"
        ):
            client.create_template("bom", content)
        with pytest.raises(errors.InvalidTemplate, match=f"over the {limit} limit"):
            client.update_template("ulang", content=content)
    assert [t["name"] for t in client.list_templates()] == ["ulang"]
    assert client.get_template("ulang")["content"] == DATA_LOOPS

    # Over the limits with this data: every path that renders refuses it, quickly.
    started = time.monotonic()
    with pytest.raises(errors.TemplateRenderError, match="template 'ulang' could not be rendered: over the step limit"):
        client.send("081234567890", template="ulang", data={"nama": "Ani", "n": 10000})
    with pytest.raises(errors.InvalidRequest, match="over the step limit"):
        client.send_bulk([{"whatsapp": "081234567890", "data": {"nama": "Ani", "n": 10000}}], template="ulang")
    with pytest.raises(errors.TemplateRenderError, match="over the step limit"):
        client.preview_template("ulang", {"nama": "Ani", "n": 10000})
    assert time.monotonic() - started < 5
    assert _rows(client.settings) == 0 and _broker_keys(client.settings) == []

    # Within them, it is an ordinary template.
    assert client.preview_template("ulang", {"nama": "Ani", "n": 2})["text"] == "Halo Ani...."
    client.send("081234567890", template="ulang", data={"nama": "Ani", "n": 2})
    with session_scope(client.settings.database) as db:
        assert db.scalar(select(Message.content)) == "Halo Ani...."


@pytest.mark.timeout(60)
def test_the_api_answers_a_preview_over_the_render_limits_with_a_422_naming_the_limit(
    settings: Settings, tmp_path: Path
) -> None:
    with (
        running_web(settings, tmp_path / "logs") as base,
        httpx.Client(base_url=f"{base}/api/whatsapp", headers={"X-API-Key": API_KEY}, timeout=30) as api,
    ):
        for content, limit in [(LOOPS, "step"), ("{{ 'x' * 10**9 }}", "size"), ("{{ 'x'|center(10**9) }}", "size")]:
            started = time.monotonic()
            answer = api.post("/templates/preview", json={"content": content})
            assert time.monotonic() - started < 5
            assert answer.status_code == 422, answer.text
            assert answer.json()["error"] == "template_error"
            assert f"over the {limit} limit" in answer.json()["detail"]

        created = api.post("/templates", json={"name": "bom", "content": LOOPS})
        assert created.status_code == 422 and "over the step limit" in created.json()["detail"]
        # The web process is still answering, and ordinary previews still work.
        fine = api.post("/templates/preview", json={"content": DATA_LOOPS, "data": {"nama": "Ani", "n": 1}})
        assert fine.status_code == 200 and fine.json()["text"] == "Halo Ani."
        assert httpx.get(f"{base}/health").json()["status"] == "ok"


def test_install_defaults_is_idempotent_and_never_overwrites_an_operators_template(client: Client) -> None:
    first = client.install_default_templates()
    assert sorted(first["installed"]) == sorted(DEFAULTS) and first["kept"] == []

    # An operator edits one default and switches another off
    client.update_template("payment_reminder", content="Pengingat: {{ invoice_number }}")
    client.deactivate_template("voucher_activated")
    with session_scope(client.settings.database) as db:
        db.execute(delete(Template).where(Template.name == "new_invoice"))

    second = client.install_default_templates()

    assert second["installed"] == ["new_invoice"]  # only the missing one comes back
    assert sorted(second["kept"]) == sorted(set(DEFAULTS) - {"new_invoice"})
    assert client.get_template("payment_reminder")["content"] == "Pengingat: {{ invoice_number }}"
    assert client.get_template("voucher_activated")["isActive"] is False
    assert client.get_template("new_invoice")["content"] == DEFAULTS["new_invoice"].content
    assert client.install_default_templates()["installed"] == []
    assert len(client.list_templates()) == len(DEFAULTS)


def test_preview_renders_lists_missing_data_and_warns_but_stores_and_queues_nothing(client: Client) -> None:
    client.install_default_templates()
    client.create_template("promo", PROMO + " Info: https://isp.example/promo !!!!!!!!!!!!", category="promotion")
    before = _broker_keys(client.settings)

    saved = client.preview_template("payment_reminder", {"customer_name": "Budi", "amount": 150000})
    unsaved = client.preview_template(content="Hai {{ nama }}", data={"nama": "Ani"})
    promo = client.preview_template("promo", {"bulan": "Juli"})
    button = client.preview_template(content="Pilih:", type="button", data={"buttons": ["Ya", "Tidak"]})

    assert saved["missing"] == ["due_date", "invoice_number", "payment_url"]
    assert "💰 Jumlah: Rp150.000" in saved["text"] and "📄 No. Invoice: {{invoice_number}}" in saved["text"]
    assert unsaved == {"text": "Hai Ani", "variables": ["nama"], "missing": [], "warnings": [], "type": "text"}
    assert promo["missing"] == [] and promo["text"].startswith("Promo Juli: kecepatan 2x lipat")
    assert len(promo["warnings"]) == 2
    assert "12 × '!' in a row" in promo["warnings"][0] and "1 link(s)" in promo["warnings"][1]
    assert button["text"] == "Pilih:\n\n1. Ya\n2. Tidak\n\nBalas dengan angka pilihan Anda."
    # Nothing stored, nothing on the broker
    assert _rows(client.settings) == 0
    assert _broker_keys(client.settings) == before == []


def test_a_promotion_is_refused_to_a_customer_who_opted_out_and_transactional_messages_still_go(
    client: Client,
) -> None:
    client.install_default_templates()
    client.create_template("promo", PROMO, category="promotion")
    settings = client.settings

    # The customer replied "Berhenti" (as the session host's incoming handler records it)
    assert optout.handle_incoming(settings, "wa-1", "6281234567890", " Berhenti ", "SIMIN1") is True
    assert optout.handle_incoming(settings, "wa-1", "6281234567890", "STOP", "SIMIN2") is True  # stays one row
    assert client.is_opted_out("0812-3456-7890") and not client.is_opted_out("0813-0000-0001")

    with pytest.raises(errors.OptedOut) as refused:
        client.send("0812-3456-7890", template="promo", data={"bulan": "Juli"})
    assert "opted out of promotions (replied 'Berhenti'" in str(refused.value)
    assert "client.opt_in" in str(refused.value)
    assert _rows(settings) == 0 and _broker_keys(settings) == []

    # Transactional templates and other customers are not affected
    client.send(
        "0812-3456-7890",
        template="payment_confirmation",
        data={
            "invoice_number": "INV-1",
            "amount": 1,
            "payment_method": "Tunai",
            "payment_date": "2025-01-01",
            "reference": "R",
        },
    )
    client.send("0813-0000-0001", template="promo", data={"bulan": "Juli"})
    assert _rows(settings) == 2

    # The customer asks for promotions again
    assert client.opt_in("6281234567890") is True and client.opt_in("6281234567890") is False
    client.send("0812-3456-7890", template="promo", data={"bulan": "Agustus"})
    with session_scope(settings.database) as db:
        assert db.scalar(select(func.count()).select_from(OptOut)) == 0


def test_trigger_errors_raise_and_queue_nothing(client: Client) -> None:
    client.install_default_templates()

    with pytest.raises(errors.UnknownEvent, match="no trigger for event 'invoice.paid'"):
        client.notify("invoice.paid", {"customer_whatsapp": "081234567890"})
    with pytest.raises(errors.MissingRecipient, match="customer_whatsapp"):
        client.notify("voucher.activated", {"voucher_code": "X", "duration": "1 hari", "expiry_time": "2025-01-01"})
    with pytest.raises(errors.TemplateRenderError, match="needs data for: expiry_time"):
        client.notify("voucher.activated", {"to": "081234567890", "voucher_code": "X", "duration": "1 hari"})
    with pytest.raises(errors.InvalidMessage, match="needs 'templateName'"):
        client.notify("bulk.send", {"recipients": [{"whatsapp": "081234567890"}]})
    with pytest.raises(errors.InvalidMessage, match="trigger data must be a mapping"):
        client.notify("invoice.created", ["081234567890"])  # type: ignore[arg-type]

    assert _rows(client.settings) == 0 and _broker_keys(client.settings) == []


def test_media_and_interactive_requests_store_what_the_session_host_needs(client: Client) -> None:
    client.create_template("promo_gambar", "Promo {{ bulan }}!", type="media", category="promotion")
    client.create_template("menu", "Pilih paket:", type="list")

    from_bytes = client.send_media("081234567890", PNG_1PX, caption="Bukti bayar")
    from_url = client.send_media(
        "081234567890", "https://cdn.isp.example/brosur.pdf?sig=abc", template="promo_gambar", data={"bulan": "Mei"}
    )
    from_template = client.send(
        "081234567890", template="promo_gambar", data={"bulan": "Juni", "media_url": "https://cdn.isp.example/p.jpg"}
    )
    listed = client.send(
        "081234567890", template="menu", data={"sections": [{"title": "Bulanan", "rows": [{"title": "10 Mbps"}]}]}
    )

    with session_scope(client.settings.database) as db:
        rows = {m.id: m for m in db.scalars(select(Message))}
    assert (rows[from_bytes].message_type, rows[from_bytes].content) == ("media", "Bukti bayar")
    assert rows[from_bytes].media_data == PNG_1PX and rows[from_bytes].media_mimetype == "image/png"
    assert rows[from_url].media_url == "https://cdn.isp.example/brosur.pdf?sig=abc"
    assert rows[from_url].content == "Promo Mei!" and rows[from_url].media_data is None
    assert rows[from_template].media_url == "https://cdn.isp.example/p.jpg"
    assert rows[from_template].data == {"bulan": "Juni", "media_url": "https://cdn.isp.example/p.jpg"}
    assert rows[listed].message_type == "list"
    assert rows[listed].content == "Pilih paket:\n\n*Bulanan*\n1. 10 Mbps\n\nBalas dengan angka pilihan Anda."

    for call, words in [
        (lambda: client.send_media("081234567890", b"not an image", caption="x"), "pass mimetype="),
        (lambda: client.send_media("081234567890", b"\x89PNG\r\n\x1a\n" + bytes(17_000_000), caption="x"), "16 MB"),
        (lambda: client.send_media("081234567890", "ftp://cdn.example/a.png", caption="x"), "http:// or https://"),
        (lambda: client.send_media("081234567890", PNG_1PX), "needs a caption= or a template="),
        (lambda: client.send("081234567890", template="promo_gambar", data={"bulan": "Mei"}), "data['media_url']"),
        (lambda: client.send("081234567890", template="menu", data={}), "data['sections']"),
    ]:
        with pytest.raises(errors.InvalidMessage) as info:
            call()
        assert words in str(info.value)
    assert _rows(client.settings) == 4


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wa_tasks", *args], env=env, capture_output=True, text=True, timeout=60, input=stdin
    )


def test_the_templates_cli(settings: Settings, tmp_path: Path) -> None:
    env = settings_env(settings)

    installed = _cli(env, "templates", "install-defaults")
    again = _cli(env, "templates", "install-defaults")
    assert installed.returncode == 0, installed.stderr
    assert sorted(installed.stdout.split("\n")[:-1]) == sorted(f"installed {name}" for name in DEFAULTS)
    assert sorted(again.stdout.split("\n")[:-1]) == sorted(f"kept {name} (already present)" for name in DEFAULTS)

    created = _cli(env, "templates", "create", "promo", "--category", "promotion", "--file", "-", stdin=PROMO)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "created template promo (variables: bulan)"

    listed = json.loads(_cli(env, "templates", "list", "--json").stdout)["templates"]
    assert sorted(t["name"] for t in listed) == sorted([*DEFAULTS, "promo"])

    preview = _cli(env, "templates", "preview", "expiry_warning", "--data", '{"customer_name": "Budi"}')
    assert preview.returncode == 0, preview.stderr
    assert "Halo Budi," in preview.stdout and "⏰ {{remaining_time}}" in preview.stdout
    assert "missing: remaining_time, renewal_url" in preview.stdout
    warned = _cli(env, "templates", "preview", "--content", "Diskon!!!!!!!!!!!! https://isp.example")
    assert warned.stdout.count("warning: ") == 2

    assert _cli(env, "templates", "deactivate", "promo").returncode == 0
    shown = json.loads(_cli(env, "templates", "show", "promo", "--json").stdout)
    assert shown["isActive"] is False and shown["category"] == "promotion"

    bad = _cli(env, "templates", "create", "x y", "--content", "Halo")
    assert bad.returncode != 0 and "template name 'x y' is not valid" in bad.stderr
    unknown = _cli(env, "templates", "show", "nope")
    assert unknown.returncode != 0 and "unknown template 'nope'" in unknown.stderr
    assert "Traceback" not in bad.stderr + unknown.stderr
    assert _rows(settings) == 0
