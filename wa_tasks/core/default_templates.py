"""The templates wa-tasks ships: the usual billing notifications, and ``new_invoice`` for the
``invoice.created`` trigger.

They are installed by the 0002 migration and by ``wa-tasks templates install-defaults``; both only
add the ones that are missing and never overwrite a template an operator has edited or
deactivated. The texts pass amounts and dates through the Indonesian formatting helpers:
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

#: Every shipped template, by name.
DEFAULTS: dict[str, DefaultTemplate] = {
    t.name: t for t in (NEW_INVOICE, PAYMENT_REMINDER, PAYMENT_CONFIRMATION, EXPIRY_WARNING, VOUCHER_ACTIVATED)
}
