"""What templates turn into: the shipped defaults with complete data, the formatting helpers inside
the sandbox, previews with their warnings, and the plain-text fallback of button and list messages."""

import datetime as dt

import pytest

from wa_tasks.core import rendering
from wa_tasks.core.default_templates import DEFAULTS
from wa_tasks.errors import InvalidMessage, TemplateRenderError
from wa_tasks.pipeline import compose

#: Complete data for every default template, as billing code would pass it.
DATA = {
    "customer_name": "Budi Santoso",
    "invoice_number": "INV-2025-0001",
    "amount": 150000,
    "due_date": "2025-01-09",
    "payment_url": "https://bayar.isp.example/INV-2025-0001",
    "payment_method": "Transfer BCA",
    "payment_date": dt.date(2025, 1, 8),
    "reference": "TRX-889172",
    "remaining_time": dt.timedelta(days=3),
    "renewal_url": "https://isp.example/perpanjang",
    "voucher_code": "HSP-7K2M",
    "duration": 30 * 24 * 3600,
    "expiry_time": "2025-02-08T10:30:00Z",
    "reactivated_at": dt.datetime(2025, 1, 12, 2, 5, tzinfo=dt.UTC),
}

EXPECTED = {
    "new_invoice": (
        "🧾 Tagihan Baru\n\nHalo Budi Santoso,\n\nTagihan layanan internet Anda sudah terbit:\n"
        "📄 No. Invoice: INV-2025-0001\n💰 Jumlah: Rp150.000\n📅 Jatuh Tempo: 9 Januari 2025\n\n"
        "Mohon lakukan pembayaran sebelum jatuh tempo melalui:\nhttps://bayar.isp.example/INV-2025-0001\n\n"
        "Terima kasih!"
    ),
    "payment_reminder": (
        "Halo Budi Santoso,\n\nIni adalah pengingat pembayaran untuk:\n📄 No. Invoice: INV-2025-0001\n"
        "💰 Jumlah: Rp150.000\n📅 Jatuh Tempo: 9 Januari 2025\n\nSegera lakukan pembayaran melalui:\n"
        "https://bayar.isp.example/INV-2025-0001\n\nTerima kasih!"
    ),
    "payment_confirmation": (
        "✅ Pembayaran Berhasil!\n\nDetail Pembayaran:\n📄 No. Invoice: INV-2025-0001\n💰 Jumlah: Rp150.000\n"
        "🏦 Metode: Transfer BCA\n📅 Tanggal: 8 Januari 2025\n📝 Referensi: TRX-889172\n\n"
        "Layanan Anda telah diperpanjang.\nTerima kasih atas kepercayaan Anda!"
    ),
    "expiry_warning": (
        "⚠️ Peringatan Expired\n\nHalo Budi Santoso,\n\nLayanan internet Anda akan expired dalam:\n⏰ 3 hari\n\n"
        "Segera perpanjang untuk menghindari gangguan layanan.\nHubungi admin atau klik link berikut:\n"
        "https://isp.example/perpanjang\n\nTerima kasih!"
    ),
    "voucher_activated": (
        "🎉 Voucher Aktif!\n\nVoucher Anda telah aktif:\n🔑 Kode: HSP-7K2M\n⏰ Masa Aktif: 30 hari\n"
        "📅 Expired: 8 Februari 2025 17.30 WIB\n\nSelamat menikmati layanan internet kami!\nTerima kasih!"
    ),
    "due_today_reminder": (
        "⏰ Jatuh Tempo Hari Ini\n\nHalo Budi Santoso,\n\nTagihan layanan internet Anda jatuh tempo hari ini, "
        "9 Januari 2025:\n📄 No. Invoice: INV-2025-0001\n💰 Jumlah: Rp150.000\n\n"
        "Mohon lakukan pembayaran hari ini agar layanan tetap aktif:\nhttps://bayar.isp.example/INV-2025-0001\n\n"
        "Abaikan pesan ini jika Anda sudah membayar. Terima kasih!"
    ),
    "overdue_reminder": (
        "⚠️ Tagihan Lewat Jatuh Tempo\n\nHalo Budi Santoso,\n\nTagihan layanan internet Anda telah melewati jatuh "
        "tempo:\n📄 No. Invoice: INV-2025-0001\n💰 Jumlah: Rp150.000\n📅 Jatuh Tempo: 9 Januari 2025\n\n"
        "Segera lakukan pembayaran agar layanan Anda tidak diisolir (dinonaktifkan sementara):\n"
        "https://bayar.isp.example/INV-2025-0001\n\nAbaikan pesan ini jika Anda sudah membayar. Terima kasih!"
    ),
    "isolir_notice": (
        "🔒 Layanan Diisolir\n\nHalo Budi Santoso,\n\nLayanan internet Anda untuk sementara dinonaktifkan (isolir) "
        "karena tagihan berikut belum dibayar:\n📄 No. Invoice: INV-2025-0001\n💰 Jumlah: Rp150.000\n"
        "📅 Jatuh Tempo: 9 Januari 2025\n\nLayanan aktif kembali setelah pembayaran kami terima:\n"
        "https://bayar.isp.example/INV-2025-0001\n\nSudah membayar atau butuh bantuan? Balas pesan ini. Terima kasih."
    ),
    "reactivation_notice": (
        "✅ Layanan Aktif Kembali\n\nHalo Budi Santoso,\n\nPembayaran invoice INV-2025-0001 sudah kami terima.\n"
        "Layanan internet Anda aktif kembali sejak 12 Januari 2025 09.05 WIB.\n\n"
        "Jika koneksi belum normal, matikan lalu nyalakan kembali router Anda.\nTerima kasih!"
    ),
}


def test_the_shipped_defaults_are_the_seeds_four_new_invoice_and_the_billing_days_four():
    assert sorted(DEFAULTS) == sorted(EXPECTED)
    categories = {name: t.category for name, t in DEFAULTS.items()}
    assert categories == {
        "new_invoice": "notification",
        "payment_reminder": "reminder",
        "payment_confirmation": "notification",
        "expiry_warning": "reminder",
        "voucher_activated": "notification",
        "due_today_reminder": "reminder",
        "overdue_reminder": "reminder",
        "isolir_notice": "notification",
        "reactivation_notice": "notification",
    }
    assert {t.type for t in DEFAULTS.values()} == {"text"}
    assert {t.language for t in DEFAULTS.values()} == {"id"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_default_renders_with_complete_data_to_the_exact_text(name):
    default = DEFAULTS[name]

    assert rendering.render(default.content, DATA, name=name) == EXPECTED[name]
    assert tuple(rendering.variables_of(default.content)) == default.variables


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_default_refuses_to_render_without_each_of_its_variables(name):
    default = DEFAULTS[name]
    for variable in default.variables:
        data = {k: v for k, v in DATA.items() if k != variable}
        with pytest.raises(TemplateRenderError) as info:
            rendering.render(default.content, data, name=f"template {name!r}")
        assert str(info.value) == f"template {name!r} needs data for: {variable}"


def test_an_amount_given_as_a_string_renders_as_rupiah():
    # Billing systems may pass the amount as the string "150000": it still shows as rupiah.
    text = rendering.render(
        DEFAULTS["payment_reminder"].content, {**DATA, "amount": "150000", "due_date": "30 November 2026"}
    )

    assert "💰 Jumlah: Rp150.000\n" in text
    assert "📅 Jatuh Tempo: 30 November 2026\n" in text


def test_helpers_work_as_filters_and_as_functions():
    content = (
        "{{ amount|rupiah }} / {{ rupiah(amount) }} / {{ tanggal(d) }} / {{ d|tanggal_jam }} / {{ 7200|sisa_waktu }}"
    )

    text = rendering.render(content, {"amount": 2500000, "d": "2025-06-01T00:00:00Z"})

    assert text == "Rp2.500.000 / Rp2.500.000 / 1 Juni 2025 / 1 Juni 2025 07.00 WIB / 2 jam"
    assert rendering.variables_of(content) == ["amount", "d"]  # helpers are not variables


def test_a_helper_given_bad_data_is_a_template_error_naming_the_template_and_the_value():
    with pytest.raises(TemplateRenderError) as info:
        rendering.render("{{ amount|rupiah }}", {"amount": "seratus ribu"}, name="template 'tagihan'")

    assert "template 'tagihan'" in str(info.value)
    assert "'seratus ribu' is not an amount" in str(info.value)


def test_an_unknown_filter_is_a_syntax_error_before_anything_renders():
    with pytest.raises(TemplateRenderError, match="No filter named 'idr'"):
        rendering.variables_of("{{ amount|idr }}")


@pytest.mark.parametrize(
    "content",
    [
        "{{ rupiah.__globals__ }}",
        "{{ tanggal.__code__.co_consts }}",
        "{{ (amount|rupiah).__class__.__mro__ }}",
        "{{ sisa_waktu.__wrapped__ }}",
        '{{ rupiah|attr("__globals__") }}',
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    ],
)
def test_the_helpers_open_no_way_out_of_the_sandbox(content):
    for render in (
        lambda: rendering.render(content, {"amount": 1}),
        lambda: rendering.preview(content, {"amount": 1}),
        lambda: rendering.preview(content, {}),
    ):
        with pytest.raises(TemplateRenderError, match="unsafe"):
            render()


def test_preview_lists_missing_variables_and_shows_where_they_go():
    result = rendering.preview(DEFAULTS["payment_reminder"].content, {"customer_name": "Ani", "amount": 99000})

    assert result.missing == ["due_date", "invoice_number", "payment_url"]
    assert result.variables == ["amount", "customer_name", "due_date", "invoice_number", "payment_url"]
    assert "Halo Ani," in result.text
    assert "💰 Jumlah: Rp99.000" in result.text
    assert "📄 No. Invoice: {{invoice_number}}" in result.text
    assert "📅 Jatuh Tempo: {{due_date}}" in result.text  # a helper passes a missing value through


def test_preview_with_complete_data_is_the_text_sent():
    result = rendering.preview(DEFAULTS["payment_confirmation"].content, DATA)

    assert result.text == EXPECTED["payment_confirmation"]
    assert result.missing == []
    assert result.warnings == []


def test_content_warnings_are_seed_11s_spam_patterns():
    assert rendering.content_warnings("Tagihan Anda sudah terbit.") == []
    assert rendering.content_warnings("Promo!!!!!!!!!!") == []  # ten in a row is still fine
    [run] = rendering.content_warnings("PROMO!!!!!!!!!!!")  # eleven
    assert "11 × '!' in a row" in run
    [link] = rendering.content_warnings("Bayar di https://bayar.example/x, http://b.example/y.")
    assert "contains 2 link(s) (https://bayar.example/x, http://b.example/y)" in link  # trailing punctuation dropped


def test_preview_reports_warnings_and_an_oversize_text_instead_of_refusing():
    result = rendering.preview("{{ x }} ==================== https://promo.example", {"x": "ab" * 2045})

    assert len(result.warnings) == 3
    assert "20 × '=' in a row" in result.warnings[0]
    assert "1 link(s)" in result.warnings[1]
    assert "sending is refused over 4096" in result.warnings[2]


def test_oversize_output_is_refused_when_sending():
    # 10**3090 written out: "Rp1" and 1030 groups of ".000"; the data alone is short
    with pytest.raises(TemplateRenderError, match="renders to 4123 characters; the limit is 4096"):
        rendering.render("{{ x|rupiah }}", {"x": 10**3090})


# Button and list messages: a plain-text fallback ---------------------------------------------------


def test_a_button_message_becomes_text_with_numbered_options():
    composed = compose.compose(
        name="tagihan_tombol",
        type="button",
        content="Tagihan {{ invoice }} sebesar {{ amount|rupiah }} sudah terbit.",
        data={
            "invoice": "INV-7",
            "amount": 150000,
            "buttons": ["Bayar sekarang", {"text": "Hubungi admin"}, {"buttonText": {"displayText": "Nanti"}}],
        },
    )

    assert composed.message_type == "button"
    assert composed.content == (
        "Tagihan INV-7 sebesar Rp150.000 sudah terbit.\n\n"
        "1. Bayar sekarang\n2. Hubungi admin\n3. Nanti\n\n"
        "Balas dengan angka pilihan Anda."
    )


def test_a_list_message_becomes_text_with_sections_numbered_throughout_and_its_footer():
    composed = compose.compose(
        name="paket",
        type="list",
        content="Halo {{ name }}, pilih paket perpanjangan:",
        data={
            "name": "Siti",
            "sections": [
                {"title": "Bulanan", "rows": [{"title": "10 Mbps", "description": "Rp150.000"}, {"title": "20 Mbps"}]},
                {"title": "Harian", "rows": [{"title": "Voucher 1 hari", "description": "Rp5.000"}]},
            ],
            "footer": "ISP Nusantara",
            "buttonText": "Pilih",
        },
    )

    assert composed.message_type == "list"
    assert composed.content == (
        "Halo Siti, pilih paket perpanjangan:\n\n"
        "*Bulanan*\n1. 10 Mbps - Rp150.000\n2. 20 Mbps\n\n"
        "*Harian*\n3. Voucher 1 hari - Rp5.000\n\n"
        "Balas dengan angka pilihan Anda.\nISP Nusantara"
    )


@pytest.mark.parametrize(
    ("type_", "data", "words"),
    [
        ("button", {}, "give data['buttons']"),
        ("button", {"buttons": "Bayar"}, "give data['buttons']"),
        ("button", {"buttons": [""]}, "buttons[0] must be a label"),
        ("list", {"sections": [{"title": "x"}]}, "sections[0] needs 'rows'"),
        ("list", {"sections": [{"rows": [{"id": 1}]}]}, "sections[0].rows[0] must be a label"),
        ("media", {}, "give the image's http(s) URL as data['media_url']"),
        ("media", {"media_url": "file:///etc/passwd"}, "must be an http:// or https:// URL"),
    ],
)
def test_a_message_type_without_what_it_needs_is_refused(type_, data, words):
    with pytest.raises(InvalidMessage) as info:
        compose.compose(name="t", type=type_, content="Halo", data=data)

    assert words in str(info.value)
    assert "template 't'" in str(info.value)


def test_a_media_template_takes_its_url_from_the_data_and_its_caption_from_the_content():
    composed = compose.compose(
        name="promo_gambar",
        type="media",
        content="Promo {{ month }}!",
        data={"month": "Juli", "mediaUrl": "https://cdn.example/promo.png"},
    )

    assert composed.message_type == "media"
    assert composed.content == "Promo Juli!"
    assert composed.media is not None and composed.media.url == "https://cdn.example/promo.png"


def test_data_is_stored_as_plain_json():
    stored = compose.jsonable(
        {
            "due": dt.date(2025, 1, 9),
            "left": dt.timedelta(hours=1),
            "n": 1,
            "tags": ("a",),
            "deep": {"at": DATA["payment_date"]},
        }
    )

    assert stored == {"due": "2025-01-09", "left": 3600.0, "n": 1, "tags": ["a"], "deep": {"at": "2025-01-08"}}
    with pytest.raises(InvalidMessage, match=r"data\['blob'\] is a bytes"):
        compose.jsonable({"blob": b"x"})


def test_a_ladders_templates_render_with_a_billing_systems_invoice():
    from wa_tasks.core import ladder

    # An invoice as a MikroTik billing app exports it: slashes in the number, a day-first date, a big amount
    invoice = {
        "customer_name": "Rina Marlina",
        "invoice_number": "INV/2026/12/0042",
        "amount": "1.250.000",
        "due_date": "10-12-2026",
        "payment_url": "https://bayar.isp.example/i/0042",
    }
    now = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
    plan = ladder.ladder_plan(invoice["invoice_number"], "2026-12-10", now=now)
    texts = {p.step.label: rendering.render(DEFAULTS[p.template].content, invoice, name=p.template) for p in plan}
    assert [p.notice_key for p in plan][0] == "invoice:INV/2026/12/0042:reminder:H-3"
    for text in texts.values():
        assert "INV/2026/12/0042" in text and "Rp1.250.000" in text and "Rina Marlina" in text
    assert "📅 Jatuh Tempo: 10 Desember 2026" in texts["H-3"]
    assert "jatuh tempo hari ini, 10 Desember 2026" in texts["H0"]
    assert "telah melewati jatuh tempo" in texts["H+1"] and "diisolir" in texts["H+1"]
