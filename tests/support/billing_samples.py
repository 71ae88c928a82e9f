"""Billing events as billing code sends them, and the exact text each customer must see."""

from __future__ import annotations

from typing import Any

#: A tiny valid PNG (1×1, transparent): what a media test serves and expects to arrive.
PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)

#: event → (data, the text the customer receives). Each goes to its own number.
TRIGGERS: dict[str, tuple[dict[str, Any], str]] = {
    "invoice.created": (
        {
            "customer_whatsapp": "0812-1111-0001",
            "customer_name": "Budi Santoso",
            "invoice_number": "INV-2025-0001",
            "amount": 150000,
            "due_date": "2025-01-09",
            "payment_url": "https://bayar.isp.example/INV-2025-0001",
        },
        "🧾 Tagihan Baru\n\nHalo Budi Santoso,\n\nTagihan layanan internet Anda sudah terbit:\n"
        "📄 No. Invoice: INV-2025-0001\n💰 Jumlah: Rp150.000\n📅 Jatuh Tempo: 9 Januari 2025\n\n"
        "Mohon lakukan pembayaran sebelum jatuh tempo melalui:\nhttps://bayar.isp.example/INV-2025-0001\n\n"
        "Terima kasih!",
    ),
    "payment.completed": (
        {
            "customer_whatsapp": "+62 812 1111 0002",
            "invoice_number": "INV-2025-0002",
            "amount": "275000",
            "payment_method": "QRIS",
            "payment_date": "2025-01-10T03:15:00Z",
            "reference": "QR-55120",
        },
        "✅ Pembayaran Berhasil!\n\nDetail Pembayaran:\n📄 No. Invoice: INV-2025-0002\n💰 Jumlah: Rp275.000\n"
        "🏦 Metode: QRIS\n📅 Tanggal: 10 Januari 2025\n📝 Referensi: QR-55120\n\n"
        "Layanan Anda telah diperpanjang.\nTerima kasih atas kepercayaan Anda!",
    ),
    "service.expiring": (
        {
            "to": "6281211110003",
            "customer_name": "Siti Rahayu",
            "remaining_time": 3 * 24 * 3600,
            "renewal_url": "https://isp.example/perpanjang",
        },
        "⚠️ Peringatan Expired\n\nHalo Siti Rahayu,\n\nLayanan internet Anda akan expired dalam:\n⏰ 3 hari\n\n"
        "Segera perpanjang untuk menghindari gangguan layanan.\nHubungi admin atau klik link berikut:\n"
        "https://isp.example/perpanjang\n\nTerima kasih!",
    ),
    "voucher.activated": (
        {
            "customer_whatsapp": "6281211110004@s.whatsapp.net",
            "voucher_code": "HSP-7K2M",
            "duration": "1 hari",
            "expiry_time": "2025-01-11T05:00:00Z",
        },
        "🎉 Voucher Aktif!\n\nVoucher Anda telah aktif:\n🔑 Kode: HSP-7K2M\n⏰ Masa Aktif: 1 hari\n"
        "📅 Expired: 11 Januari 2025 12.00 WIB\n\nSelamat menikmati layanan internet kami!\nTerima kasih!",
    ),
    "service.suspended": (
        {
            "customer_whatsapp": "0812-1111-0005",
            "customer_name": "Joko Widodo",
            "invoice_number": "INV/2025/01/0417",
            "amount": 1250000,
            "due_date": "09-01-2025",
            "payment_url": "https://bayar.isp.example/INV-2025-01-0417",
        },
        "🔒 Layanan Diisolir\n\nHalo Joko Widodo,\n\nLayanan internet Anda untuk sementara dinonaktifkan (isolir) "
        "karena tagihan berikut belum dibayar:\n📄 No. Invoice: INV/2025/01/0417\n💰 Jumlah: Rp1.250.000\n"
        "📅 Jatuh Tempo: 9 Januari 2025\n\nLayanan aktif kembali setelah pembayaran kami terima:\n"
        "https://bayar.isp.example/INV-2025-01-0417\n\nSudah membayar atau butuh bantuan? Balas pesan ini. "
        "Terima kasih.",
    ),
    "service.reactivated": (
        {
            "customer_whatsapp": "+62 812-1111-0006",
            "customer_name": "Dewi Lestari",
            "invoice_number": "INV-2025-0006",
            "reactivated_at": "2025-01-12T02:05:00Z",
        },
        "✅ Layanan Aktif Kembali\n\nHalo Dewi Lestari,\n\nPembayaran invoice INV-2025-0006 sudah kami terima.\n"
        "Layanan internet Anda aktif kembali sejak 12 Januari 2025 09.05 WIB.\n\n"
        "Jika koneksi belum normal, matikan lalu nyalakan kembali router Anda.\nTerima kasih!",
    ),
}

#: The E.164 number each event above goes to.
NUMBERS = {
    "invoice.created": "6281211110001",
    "payment.completed": "6281211110002",
    "service.expiring": "6281211110003",
    "voucher.activated": "6281211110004",
    "service.suspended": "6281211110005",
    "service.reactivated": "6281211110006",
}
