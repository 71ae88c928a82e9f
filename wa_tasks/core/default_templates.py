"""The templates wa-tasks ships: the usual billing notifications, ``new_invoice`` for the
``invoice.created`` trigger, the due-day and overdue steps of reminder ladders
(``wa_tasks/core/ladder.py``), and the isolir (suspension) and reactivation notices of the
``service.suspended`` and ``service.reactivated`` triggers.

They are installed by the migrations (0002 the first five, 0010 the billing-day four) and by
``wa-tasks templates install-defaults``; all only add the ones that are missing and never
overwrite a template an operator has edited or deactivated. The texts pass amounts and dates
through the Indonesian formatting helpers:
``{{amount|rupiah}}`` shows ``150000`` as ``Rp150.000`` (not ``Rp150000``), and
``{{due_date|tanggal}}`` shows ``2025-01-09`` as ``9 Januari 2025`` (a date already written out in
words is shown as given).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DefaultTemplate:
    name: str
    category: str
    type: str
    content: str
    #: The variables ``content`` uses, sorted (a unit test checks them against the content).
    variables: tuple[str, ...]
    language: str = "id"


NEW_INVOICE = DefaultTemplate(
    name="new_invoice",
    category="notification",
    type="text",
    content="""🧾 Tagihan Baru

Halo {{customer_name}},

Tagihan layanan internet Anda sudah terbit:
📄 No. Invoice: {{invoice_number}}
💰 Jumlah: {{amount|rupiah}}
📅 Jatuh Tempo: {{due_date|tanggal}}

Mohon lakukan pembayaran sebelum jatuh tempo melalui:
{{payment_url}}

Terima kasih!""",
    variables=("amount", "customer_name", "due_date", "invoice_number", "payment_url"),
)

PAYMENT_REMINDER = DefaultTemplate(
    name="payment_reminder",
    category="reminder",
    type="text",
    content="""Halo {{customer_name}},

Ini adalah pengingat pembayaran untuk:
📄 No. Invoice: {{invoice_number}}
💰 Jumlah: {{amount|rupiah}}
📅 Jatuh Tempo: {{due_date|tanggal}}

Segera lakukan pembayaran melalui:
{{payment_url}}

Terima kasih!""",
    variables=("amount", "customer_name", "due_date", "invoice_number", "payment_url"),
)

PAYMENT_CONFIRMATION = DefaultTemplate(
    name="payment_confirmation",
    category="notification",
    type="text",
    content="""✅ Pembayaran Berhasil!

Detail Pembayaran:
📄 No. Invoice: {{invoice_number}}
💰 Jumlah: {{amount|rupiah}}
🏦 Metode: {{payment_method}}
📅 Tanggal: {{payment_date|tanggal}}
📝 Referensi: {{reference}}

Layanan Anda telah diperpanjang.
Terima kasih atas kepercayaan Anda!""",
    variables=("amount", "invoice_number", "payment_date", "payment_method", "reference"),
)

EXPIRY_WARNING = DefaultTemplate(
    name="expiry_warning",
    category="reminder",
    type="text",
    content="""⚠️ Peringatan Expired

Halo {{customer_name}},

Layanan internet Anda akan expired dalam:
⏰ {{remaining_time|sisa_waktu}}

Segera perpanjang untuk menghindari gangguan layanan.
Hubungi admin atau klik link berikut:
{{renewal_url}}

Terima kasih!""",
    variables=("customer_name", "remaining_time", "renewal_url"),
)

VOUCHER_ACTIVATED = DefaultTemplate(
    name="voucher_activated",
    category="notification",
    type="text",
    content="""🎉 Voucher Aktif!

Voucher Anda telah aktif:
🔑 Kode: {{voucher_code}}
⏰ Masa Aktif: {{duration|durasi}}
📅 Expired: {{expiry_time|tanggal_jam}}

Selamat menikmati layanan internet kami!
Terima kasih!""",
    variables=("duration", "expiry_time", "voucher_code"),
)

DUE_TODAY_REMINDER = DefaultTemplate(
    name="due_today_reminder",
    category="reminder",
    type="text",
    content="""⏰ Jatuh Tempo Hari Ini

Halo {{customer_name}},

Tagihan layanan internet Anda jatuh tempo hari ini, {{due_date|tanggal}}:
📄 No. Invoice: {{invoice_number}}
💰 Jumlah: {{amount|rupiah}}

Mohon lakukan pembayaran hari ini agar layanan tetap aktif:
{{payment_url}}

Abaikan pesan ini jika Anda sudah membayar. Terima kasih!""",
    variables=("amount", "customer_name", "due_date", "invoice_number", "payment_url"),
)

OVERDUE_REMINDER = DefaultTemplate(
    name="overdue_reminder",
    category="reminder",
    type="text",
    content="""⚠️ Tagihan Lewat Jatuh Tempo

Halo {{customer_name}},

Tagihan layanan internet Anda telah melewati jatuh tempo:
📄 No. Invoice: {{invoice_number}}
💰 Jumlah: {{amount|rupiah}}
📅 Jatuh Tempo: {{due_date|tanggal}}

Segera lakukan pembayaran agar layanan Anda tidak diisolir (dinonaktifkan sementara):
{{payment_url}}

Abaikan pesan ini jika Anda sudah membayar. Terima kasih!""",
    variables=("amount", "customer_name", "due_date", "invoice_number", "payment_url"),
)

ISOLIR_NOTICE = DefaultTemplate(
    name="isolir_notice",
    category="notification",
    type="text",
    content="""🔒 Layanan Diisolir

Halo {{customer_name}},

Layanan internet Anda untuk sementara dinonaktifkan (isolir) karena tagihan berikut belum dibayar:
📄 No. Invoice: {{invoice_number}}
💰 Jumlah: {{amount|rupiah}}
📅 Jatuh Tempo: {{due_date|tanggal}}

Layanan aktif kembali setelah pembayaran kami terima:
{{payment_url}}

Sudah membayar atau butuh bantuan? Balas pesan ini. Terima kasih.""",
    variables=("amount", "customer_name", "due_date", "invoice_number", "payment_url"),
)

REACTIVATION_NOTICE = DefaultTemplate(
    name="reactivation_notice",
    category="notification",
    type="text",
    content="""✅ Layanan Aktif Kembali

Halo {{customer_name}},

Pembayaran invoice {{invoice_number}} sudah kami terima.
Layanan internet Anda aktif kembali sejak {{reactivated_at|tanggal_jam}}.

Jika koneksi belum normal, matikan lalu nyalakan kembali router Anda.
Terima kasih!""",
    variables=("customer_name", "invoice_number", "reactivated_at"),
)

#: The templates each migration installs (a migration must not change with later code).
INSTALLED_BY_0002 = ("new_invoice", "payment_reminder", "payment_confirmation", "expiry_warning", "voucher_activated")
INSTALLED_BY_0010 = ("due_today_reminder", "overdue_reminder", "isolir_notice", "reactivation_notice")

#: Every shipped template, by name.
DEFAULTS: dict[str, DefaultTemplate] = {
    t.name: t
    for t in (
        NEW_INVOICE,
        PAYMENT_REMINDER,
        PAYMENT_CONFIRMATION,
        EXPIRY_WARNING,
        VOUCHER_ACTIVATED,
        DUE_TODAY_REMINDER,
        OVERDUE_REMINDER,
        ISOLIR_NOTICE,
        REACTIVATION_NOTICE,
    )
}
