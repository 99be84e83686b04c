"""Interface strings of the public pages, Indonesian first."""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {
    "id": {
        "site_title": "Layanan Aduan Warga",
        "form_heading": "Sampaikan aduan Anda",
        "form_intro": "Semua kolom kecuali isi aduan boleh dikosongkan. Aduan tentang pungli, "
        "korupsi dan penyalahgunaan wewenang dirahasiakan: identitas pelapor tidak ditampilkan "
        "dan tidak dibagikan.",
        "text_label": "Isi aduan",
        "text_help": "Apa yang terjadi, di mana, dan sejak kapan.",
        "topic_label": "Topik",
        "topic_auto": "Biar kami yang menentukan",
        "contact_legend": "Kontak (tidak wajib)",
        "contact_help": "Isi nomor HP atau email bila ingin menerima nomor tiket dan kabar "
        "perkembangan aduan.",
        "name_label": "Nama",
        "phone_label": "Nomor HP",
        "email_label": "Email",
        "location_legend": "Lokasi (tidak wajib)",
        "address_label": "Alamat atau patokan",
        "lat_label": "Lintang (latitude)",
        "lon_label": "Bujur (longitude)",
        "photo_label": "Foto (paling banyak 3, masing-masing paling besar 10 MB)",
        "confidential_label": "Rahasiakan identitas saya",
        "submit": "Kirim aduan",
        "errors_heading": "Aduan belum terkirim",
        "confirm_heading": "Aduan Anda kami terima",
        "confirm_ticket": "Nomor tiket Anda",
        "confirm_keep": "Simpan nomor ini untuk memantau aduan Anda.",
        "confirm_receipt": "Kode tanda terima rahasia",
        "confirm_receipt_help": "Laporan ini dirahasiakan. Hanya dengan kode ini Anda dapat "
        "memantau statusnya. Kami tidak dapat menampilkannya lagi.",
        "confirm_track": "Pantau status aduan",
        "pending_heading": "Aduan Anda sedang diproses",
        "pending_body": "Aduan Anda sudah tersimpan dan sedang diberi nomor tiket. "
        "Halaman ini akan diperbarui.",
        "track_heading": "Status aduan",
        "track_ticket": "Nomor tiket",
        "track_status": "Status",
        "track_topic": "Topik",
        "track_created": "Diterima",
        "track_updated": "Terakhir diperbarui",
        "track_history": "Riwayat",
        "track_receipt_label": "Kode tanda terima",
        "track_receipt_help": "Laporan rahasia hanya dapat dipantau dengan kode tanda terima.",
        "track_show": "Tampilkan",
        "not_found_heading": "Aduan tidak ditemukan",
        "not_found_body": "Nomor tiket tidak ditemukan. Periksa kembali nomornya.",
        "bad_check_heading": "Nomor tiket tidak valid",
        "bad_check_body": "Angka terakhir (angka pemeriksa) tidak cocok. Periksa kembali "
        "nomor tiket Anda.",
        "back": "Kembali ke formulir",
        "language_switch": "English",
    },
    "en": {
        "site_title": "City Complaint Service",
        "form_heading": "Tell us your complaint",
        "form_intro": "Every field but the complaint itself may be left empty. Reports of "
        "extortion, corruption and abuse of authority are confidential: the reporter's identity "
        "is hidden and not shared.",
        "text_label": "Your complaint",
        "text_help": "What happened, where, and since when.",
        "topic_label": "Topic",
        "topic_auto": "Let us decide",
        "contact_legend": "Contact (optional)",
        "contact_help": "Leave a phone number or email to receive the ticket number and updates.",
        "name_label": "Name",
        "phone_label": "Mobile number",
        "email_label": "Email",
        "location_legend": "Location (optional)",
        "address_label": "Address or landmark",
        "lat_label": "Latitude",
        "lon_label": "Longitude",
        "photo_label": "Photos (up to 3, at most 10 MB each)",
        "confidential_label": "Keep my identity confidential",
        "submit": "Send complaint",
        "errors_heading": "Your complaint was not sent",
        "confirm_heading": "We received your complaint",
        "confirm_ticket": "Your ticket number",
        "confirm_keep": "Keep this number to follow your complaint.",
        "confirm_receipt": "Secret receipt code",
        "confirm_receipt_help": "This report is confidential. Only this code lets you follow "
        "its status. We cannot show it again.",
        "confirm_track": "Follow its status",
        "pending_heading": "Your complaint is being processed",
        "pending_body": "Your complaint is saved and is being given a ticket number. "
        "This page will refresh.",
        "track_heading": "Complaint status",
        "track_ticket": "Ticket",
        "track_status": "Status",
        "track_topic": "Topic",
        "track_created": "Received",
        "track_updated": "Last updated",
        "track_history": "History",
        "track_receipt_label": "Receipt code",
        "track_receipt_help": "A confidential report can only be followed with its receipt code.",
        "track_show": "Show",
        "not_found_heading": "Complaint not found",
        "not_found_body": "That ticket number was not found. Please check it.",
        "bad_check_heading": "Ticket number not valid",
        "bad_check_body": "The last digit (the check digit) does not match. Please check the "
        "number.",
        "back": "Back to the form",
        "language_switch": "Bahasa Indonesia",
    },
}


def pick_language(query_lang: str | None, accept_language: str | None) -> str:
    if query_lang in STRINGS:
        return query_lang
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in STRINGS:
            return tag
    return "id"
