"""The mobile app's JSON API, through real HTTP, a real queue, worker and case store."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from typing import Any

from aiohttp import FormData
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from tests.conftest import Stack, eventually
from tests.helpers import dump_database, png_bytes
from workers import models
from workers.db import make_engine, session_factory

Client = TestClient[Any, Any]


async def post(client: Client, body: dict[str, Any], key: str | None = None) -> Any:
    headers = {"Idempotency-Key": key} if key else {}
    return await client.post("/api/v1/complaints", json=body, headers=headers)


def count_cases(stack: Stack, **where: Any) -> int:
    engine = make_engine(stack.settings.effective_database_url)
    try:
        with session_factory(engine)() as session:
            query = select(func.count(models.Case.id))
            for name, value in where.items():
                query = query.where(getattr(models.Case, name) == value)
            return int(session.scalar(query) or 0)
    finally:
        engine.dispose()


async def test_a_complaint_gets_a_ticket_and_a_public_status(client: Client) -> None:
    response = await post(
        client,
        {
            "text": "Jalan berlubang besar di Jl. Pajajaran depan Tugu Kujang, sudah 2 minggu.",
            "name": "Siti",
            "phone": "0812-3456-7890",
            "location": {"lat": -6.6005, "lon": 106.8052, "address": "Jl. Pajajaran"},
        },
    )
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["status"] == "received"
    assert body["ticket"].startswith("BGR-")
    assert body["track_url"].endswith(f"/track/{body['ticket']}")
    assert "receipt" not in body

    status = await client.get(f"/api/v1/complaints/{body['ticket']}")
    assert status.status == 200
    public = await status.json()
    assert public["ticket"] == body["ticket"]
    assert public["topic"] == "infrastruktur"
    assert public["history"][0]["status"] == "received"
    text = json.dumps(public)
    for secret in ("Siti", "0812", "+62812", "3456"):
        assert secret not in text


async def test_the_same_idempotency_key_twenty_times_at_once_makes_one_case(
    client: Client, stack: Stack
) -> None:
    key = str(uuid.uuid4())
    text = f"Sampah menumpuk di TPS Jl. Merdeka, bau busuk sekali ({key[:8]})"
    responses = await asyncio.gather(*(post(client, {"text": text}, key) for _ in range(20)))
    bodies = [await r.json() for r in responses]
    assert {r.status for r in responses} == {201}
    assert len({b["ticket"] for b in bodies}) == 1
    engine = make_engine(stack.settings.effective_database_url)
    with session_factory(engine)() as session:
        cases = session.scalars(
            select(models.Case).where(models.Case.title.contains(key[:8]))
        ).all()
        messages = session.scalar(
            select(func.count(models.Message.id)).where(models.Message.text.contains(key[:8]))
        )
    engine.dispose()
    assert len(cases) == 1
    assert messages == 1
    assert cases[0].ticket == bodies[0]["ticket"]


async def test_an_idempotency_key_reused_for_another_complaint_is_refused(client: Client) -> None:
    key = str(uuid.uuid4())
    first = await post(client, {"text": "Lampu jalan mati di gang Mawar"}, key)
    assert first.status == 201
    second = await post(client, {"text": "Parkir liar di depan pasar Bogor"}, key)
    assert second.status == 422
    assert (await second.json())["error"]["field"] == "Idempotency-Key"


async def test_a_confidential_report_answers_with_a_receipt_and_hides_the_reporter(
    client: Client, stack: Stack
) -> None:
    phone, name, email = "081399887766", "Bambang Sutrisno", "bambang.rahasia@example.org"
    response = await post(
        client,
        {
            "text": "Petugas kelurahan minta uang pelicin Rp200.000 untuk mengurus KTP saya.",
            "name": name,
            "phone": phone,
            "email": email,
        },
    )
    assert response.status == 201
    body = await response.json()
    assert "-R" in body["ticket"]
    assert len(body["receipt"].replace("-", "")) == 12

    # Without the receipt code the case is not found; with it, its status shows.
    assert (await client.get(f"/api/v1/complaints/{body['ticket']}")).status == 404
    opened = await client.get(
        f"/api/v1/complaints/{body['ticket']}", headers={"X-Receipt-Code": body["receipt"]}
    )
    assert opened.status == 200
    assert (await opened.json())["topic"] == "pungli"

    engine = make_engine(stack.settings.effective_database_url)
    everything = dump_database(engine)
    engine.dispose()
    assert "uang pelicin" in everything  # the report itself is kept
    for secret in (name, email, "+6281399887766", "81399887766", body["receipt"]):
        assert secret not in everything


async def test_rahasia_makes_any_report_confidential(client: Client) -> None:
    response = await post(
        client, {"text": "RAHASIA. Jalan di depan rumah pak RT rusak.", "phone": "081211112222"}
    )
    body = await response.json()
    assert "-R" in body["ticket"] and body.get("receipt")


async def test_multipart_with_photos_stores_them_with_their_hash(
    client: Client, stack: Stack
) -> None:
    form = FormData()
    form.add_field("text", "Got mampet, air meluap ke jalan tiap hujan (foto terlampir)")
    image = png_bytes()
    form.add_field("photo", image, filename="got.png", content_type="image/png")
    form.add_field("photo", image, filename="got2.png", content_type="image/png")
    response = await client.post("/api/v1/complaints", data=form)
    assert response.status == 201, await response.text()
    ticket = (await response.json())["ticket"]
    engine = make_engine(stack.settings.effective_database_url)
    with session_factory(engine)() as session:
        case = session.scalar(select(models.Case).where(models.Case.ticket == ticket))
        assert case is not None
        attachments = case.messages[0].attachments
        assert [a.filename for a in attachments] == ["got.png", "got2.png"]
        assert attachments[0].data == image
        assert attachments[0].content_type == "image/png"
        assert len(attachments[0].sha256 or "") == 64
    engine.dispose()


async def test_bad_inputs_get_clear_errors(client: Client) -> None:
    async def error_of(response: Any) -> tuple[int, dict[str, Any]]:
        return response.status, (await response.json())["error"]

    status, error = await error_of(await post(client, {"text": "   "}))
    assert (status, error["field"]) == (400, "text")

    huge = json.dumps({"text": "x" * (2 * 1024 * 1024)}).encode()
    status, error = await error_of(
        await client.post(
            "/api/v1/complaints",
            data=io.BytesIO(huge),
            headers={"Content-Type": "application/json"},
        )
    )
    assert status == 413

    status, error = await error_of(
        await client.post(
            "/api/v1/complaints", data=b"{not json", headers={"Content-Type": "application/json"}
        )
    )
    assert (status, error["code"]) == (400, "invalid_json")

    status, error = await error_of(
        await client.post(
            "/api/v1/complaints", data=b"text=hello", headers={"Content-Type": "text/plain"}
        )
    )
    assert status == 415

    odd_part = b'--zz\r\nContent-Disposition: form-data; name="U;A;1B*w>m"\r\n\r\nx\r\n--zz--\r\n'
    status, error = await error_of(
        await client.post(
            "/api/v1/complaints",
            data=odd_part,
            headers={"Content-Type": "multipart/form-data; boundary=zz"},
        )
    )
    assert (status, error["code"]) == (400, "invalid_multipart")

    status, error = await error_of(await post(client, {"text": "Jalan rusak", "phone": "12"}))
    assert (status, error["field"]) == (400, "phone")

    status, error = await error_of(await post(client, {"text": "Jalan rusak", "topic": "wifi"}))
    assert (status, error["field"]) == (400, "topic")

    status, error = await error_of(
        await post(client, {"text": "Jalan rusak", "location": {"lat": 91, "lon": 10}})
    )
    assert (status, error["field"]) == (400, "location.lat")

    big = FormData()
    big.add_field("text", "Foto jalan rusak")
    big.add_field(
        "photo",
        io.BytesIO(b"\xff\xd8\xff\xe0" + b"\0" * (20 * 1024 * 1024)),
        filename="big.jpg",
        content_type="image/jpeg",
    )
    status, error = await error_of(await client.post("/api/v1/complaints", data=big))
    assert (status, error["field"]) == (413, "photo")

    fake = FormData()
    fake.add_field("text", "Foto jalan rusak")
    fake.add_field(
        "photo", b"MZ\x90\x00 this is a program", filename="jalan.jpg", content_type="image/jpeg"
    )
    status, error = await error_of(await client.post("/api/v1/complaints", data=fake))
    assert (status, error["field"]) == (415, "photo")


async def test_a_wrong_check_digit_is_not_another_case(client: Client) -> None:
    response = await post(client, {"text": "Antrean e-KTP di Disdukcapil sangat panjang"})
    ticket = (await response.json())["ticket"]
    wrong = ticket[:-1] + str((int(ticket[-1]) + 1) % 10)
    answer = await client.get(f"/api/v1/complaints/{wrong}")
    assert answer.status == 404
    assert (await answer.json())["error"]["code"] == "bad_check_digit"


async def test_health(client: Client) -> None:
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["checks"] == {"redis": "ok", "database": "ok"}


async def test_a_reply_goes_to_the_outbox_when_no_provider_is_configured(
    client: Client, stack: Stack
) -> None:
    response = await post(
        client, {"text": "Lampu PJU mati di Jl. Sudirman", "email": "Warga@Example.ORG"}
    )
    ticket = (await response.json())["ticket"]
    engine = make_engine(stack.settings.effective_database_url)

    def outbox() -> list[models.Delivery]:
        with session_factory(engine)() as session:
            return list(
                session.scalars(
                    select(models.Delivery)
                    .join(models.Case)
                    .where(models.Case.ticket == ticket, models.Delivery.status == "outbox")
                ).all()
            )

    [delivery] = await eventually(outbox)
    engine.dispose()
    assert delivery.channel == "email"
    assert ticket in delivery.body and ticket in (delivery.subject or "")
    assert count_cases(stack, ticket=ticket) == 1
