"""The public complaint form, as a resident's browser uses it."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import FormData
from aiohttp.test_utils import TestClient

from tests.helpers import png_bytes

Client = TestClient[Any, Any]


def form_token(html: str) -> str:
    match = re.search(r'name="form_token" value="([^"]+)"', html)
    assert match, "the form carries a one-time token"
    return match.group(1)


async def test_the_form_is_indonesian_by_default_and_english_on_request(client: Client) -> None:
    indonesian = await (await client.get("/")).text()
    assert '<html lang="id">' in indonesian
    assert "Sampaikan aduan Anda" in indonesian
    assert 'for="text"' in indonesian and 'id="text"' in indonesian  # labelled fields
    assert "Biar kami yang menentukan" in indonesian

    english = await (await client.get("/?lang=en")).text()
    assert '<html lang="en">' in english and "Tell us your complaint" in english
    negotiated = await (await client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"})).text()
    assert "Tell us your complaint" in negotiated


async def test_submitting_the_form_shows_the_ticket_and_its_tracking_page(client: Client) -> None:
    page = await (await client.get("/")).text()
    form = FormData()
    form.add_field("form_token", form_token(page))
    form.add_field("lang", "id")
    form.add_field("text", "Lampu PJU di Jl. Suryakencana mati sejak seminggu, gelap sekali.")
    form.add_field("topic", "auto")
    form.add_field("address", "Jl. Suryakencana No. 12")
    form.add_field("lat", "-6.6062")
    form.add_field("lon", "106.8004")
    form.add_field("photo", png_bytes(), filename="lampu.png", content_type="image/png")
    response = await client.post("/", data=form)
    assert response.status == 200
    html = await response.text()
    ticket = re.search(r'id="ticket">([^<]+)<', html)
    assert ticket, html
    assert "Aduan Anda kami terima" in html
    assert f'href="/track/{ticket.group(1)}?lang=id"' in html

    track = await client.get(f"/track/{ticket.group(1)}")
    assert track.status == 200
    text = await track.text()
    assert ticket.group(1) in text
    assert "diterima" in text and "Penerangan jalan" in text


async def test_a_double_submit_of_the_same_form_makes_one_ticket(client: Client) -> None:
    token = form_token(await (await client.get("/")).text())
    tickets = set()
    for _ in range(2):
        response = await client.post(
            "/", data={"form_token": token, "text": "Sampah tidak diangkut 2 minggu di RW 05"}
        )
        match = re.search(r'id="ticket">([^<]+)<', await response.text())
        assert match
        tickets.add(match.group(1))
    assert len(tickets) == 1


async def test_a_form_error_is_shown_next_to_the_form_and_keeps_what_was_typed(
    client: Client,
) -> None:
    token = form_token(await (await client.get("/?lang=en")).text())
    response = await client.post(
        "/?lang=en",
        data={
            "form_token": token,
            "lang": "en",
            "text": "Broken road near the market",
            "phone": "not a phone",
        },
    )
    assert response.status == 400
    html = await response.text()
    assert 'role="alert"' in html and "phone" in html
    assert "Broken road near the market" in html
    assert 'aria-invalid="true"' in html


async def test_a_confidential_form_report_shows_its_receipt_once(client: Client) -> None:
    token = form_token(await (await client.get("/")).text())
    response = await client.post(
        "/",
        data={
            "form_token": token,
            "text": "Ada pungli di loket perizinan, diminta uang rokok.",
            "phone": "081288877766",
            "name": "Rahmat",
        },
    )
    html = await response.text()
    ticket = re.search(r'id="ticket">([^<]+)<', html)
    receipt = re.search(r'id="receipt">([^<]+)<', html)
    assert ticket and receipt
    assert "Rahmat" not in html and "081288877766" not in html

    locked = await (await client.get(f"/track/{ticket.group(1)}")).text()
    assert 'name="receipt"' in locked and "Pungutan liar" not in locked
    wrong = await client.post(f"/track/{ticket.group(1)}", data={"receipt": "AAAA-BBBB-CCCC"})
    assert wrong.status == 404
    opened = await client.post(f"/track/{ticket.group(1)}", data={"receipt": receipt.group(1)})
    assert opened.status == 200
    assert "Pungutan liar" in await opened.text()


async def test_complaint_text_with_markup_is_shown_as_text(client: Client) -> None:
    token = form_token(await (await client.get("/")).text())
    response = await client.post(
        "/",
        data={
            "form_token": token,
            "phone": "bad<script>alert(1)</script>",
            "text": "<script>alert('x')</script> jalan rusak",
        },
    )
    html = await response.text()
    assert "<script>alert" not in html
    assert "&lt;script&gt;" in html or "alert" not in html
    assert "Content-Security-Policy" in response.headers


async def test_a_mistyped_ticket_is_not_found_with_a_clear_reason(client: Client) -> None:
    bad = await client.get("/track/BGR-2026-000001-9")
    assert bad.status == 404
    assert "angka pemeriksa" in await bad.text()
    nothing = await client.get("/track/BGR-2031-999999-2")
    assert nothing.status == 404
