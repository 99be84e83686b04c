"""The console over real HTTP, with a real queue, worker and case store (no browser)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
import redis
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from gateway.app import build_services, create_app
from tests.conftest import Stack, eventually
from tests.console.conftest import PASSWORD, add_operator, csrf_of, login
from tests.helpers import png_bytes
from workers import models
from workers.db import make_engine, session_factory

Client = TestClient[Any, Any]
LoggedIn = Callable[[str], Awaitable[str]]

CONFIDENTIAL = {
    "phone": "081399887766",
    "name": "Bambang Sutrisno",
    "email": "bambang.rahasia@example.org",
}
SECRETS = (
    "081399887766",
    "+6281399887766",
    "81399887766",
    "Bambang",
    "Sutrisno",
    "bambang.rahasia",
)


async def submit(client: Client, **body: Any) -> str:
    body.setdefault("text", f"Lampu jalan mati di gang Mawar ({uuid.uuid4().hex[:8]})")
    response = await client.post("/api/v1/complaints", json=body)
    assert response.status == 201, await response.text()
    return str((await response.json())["ticket"])


def db(stack: Stack, fn: Callable[[Any], Any]) -> Any:
    engine = make_engine(stack.settings.effective_database_url)
    try:
        with session_factory(engine)() as session:
            return fn(session)
    finally:
        engine.dispose()


def case_id(stack: Stack, ticket: str) -> int:
    return int(
        db(stack, lambda s: s.scalar(select(models.Case.id).where(models.Case.ticket == ticket)))
    )


async def form(client: Client, page: str) -> str:
    response = await client.get(page)
    assert response.status == 200, await response.text()
    return csrf_of(await response.text())


# Log-in


async def test_pages_need_a_log_in(client: Client) -> None:
    for path in ("/console/", "/console/dashboard", "/console/outbox", "/console/cases/1"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"].startswith("/console/login?next=")


async def test_a_wrong_password_or_an_unknown_name_is_refused_the_same_way(
    client: Client, stack: Stack
) -> None:
    username = add_operator(stack, "operator")
    for name, password in (
        (username, "not-the-password"),
        ("nobody-here", PASSWORD),
        (username, ""),
    ):
        response = await login(client, name, password)
        assert response.status == 401
        text = await response.text()
        assert "Nama pengguna atau kata sandi salah." in text
        assert "aduan_console=" not in response.headers.get("Set-Cookie", "")
    assert (await client.get("/console/", allow_redirects=False)).status == 303


async def test_a_disabled_operator_cannot_log_in(client: Client, stack: Stack) -> None:
    username = add_operator(stack, "operator")

    def disable(session: Any) -> None:
        with session.begin():
            session.scalar(
                select(models.Operator).where(models.Operator.username == username)
            ).active = False

    db(stack, disable)
    assert (await login(client, username)).status == 401


async def test_log_in_sets_a_session_cookie_that_scripts_and_other_sites_cannot_use(
    client: Client, stack: Stack
) -> None:
    response = await login(client, add_operator(stack, "operator"))
    assert response.status == 303
    assert response.headers["Location"] == "/console/"
    cookie = response.cookies["aduan_console"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert not cookie["secure"]  # ADUAN_PUBLIC_URL is http:// in the tests
    page = await client.get("/console/")
    assert page.status == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]


async def test_the_session_cookie_is_secure_behind_https(stack: Stack) -> None:
    settings = replace(stack.settings, public_url="https://aduan.example.go.id")
    app = create_app(build_services(settings, stack.env["REDIS_URL"]))
    async with TestClient(TestServer(app, host="127.0.0.1")) as https_client:
        page = await https_client.get("/console/login")
        login_cookie = page.cookies["aduan_console_login"]
        assert login_cookie["secure"] is True
        # The test client speaks plain HTTP, so it holds back a Secure cookie: send it by hand.
        response = await https_client.post(
            "/console/login",
            data={
                "csrf": csrf_of(await page.text()),
                "username": add_operator(stack, "operator"),
                "password": PASSWORD,
            },
            headers={"Cookie": f"aduan_console_login={login_cookie.value}"},
            allow_redirects=False,
        )
        assert response.status == 303
        assert response.cookies["aduan_console"]["secure"] is True
        assert response.cookies["aduan_console"]["httponly"] is True


async def test_log_in_without_the_forms_token_is_refused(client: Client, stack: Stack) -> None:
    username = add_operator(stack, "operator")
    await client.get("/console/login")
    response = await client.post(
        "/console/login", data={"username": username, "password": PASSWORD}, allow_redirects=False
    )
    assert response.status == 403


async def test_ten_failed_log_ins_lock_that_name_for_a_while(client: Client, stack: Stack) -> None:
    username = add_operator(stack, "operator")
    for _ in range(10):
        assert (await login(client, username, "wrong-password")).status == 401
    locked = await login(client, username)  # even the right password, for now
    assert locked.status == 429
    assert "15 menit" in await locked.text()


async def test_an_idle_session_expires(client: Client, stack: Stack, logged_in: LoggedIn) -> None:
    await logged_in("operator")
    assert (await client.get("/console/")).status == 200
    # Thirty-one minutes without a request: rewind the session's last activity.
    connection = redis.Redis.from_url(stack.env["REDIS_URL"])
    keys = connection.keys("aduan:console:session:*")
    assert keys
    # Other tests' sessions share this Redis database: ours is the one just touched.
    ttl = max(int(connection.ttl(key)) for key in keys)
    assert 30 * 60 - 5 <= ttl <= 31 * 60 + 60  # Redis forgets it soon after, too
    for key in keys:
        connection.hset(key, "seen", time.time() - 31 * 60)
    response = await client.get("/console/", allow_redirects=False)
    assert response.status == 303
    assert "expired=1" in response.headers["Location"]
    again = await client.get(response.headers["Location"])
    assert "Sesi Anda berakhir" in await again.text()


async def test_log_out_ends_the_session(client: Client, logged_in: LoggedIn) -> None:
    await logged_in("operator")
    token = await form(client, "/console/")
    response = await client.post("/console/logout", data={"csrf": token}, allow_redirects=False)
    assert response.status == 303
    assert (await client.get("/console/", allow_redirects=False)).status == 303


# CSRF and roles


async def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(
    client: Client, stack: Stack, logged_in: LoggedIn
) -> None:
    ticket = await submit(client)
    await logged_in("supervisor")
    page = f"/console/cases/{case_id(stack, ticket)}"
    token = await form(client, page)
    for sent in ({}, {"csrf": "forged-" + token}):
        response = await client.post(
            f"{page}/status", data={"status": "verified", **sent}, allow_redirects=False
        )
        assert response.status == 403
        assert "CSRF" in await response.text()
    status = db(
        stack, lambda s: s.scalar(select(models.Case.status).where(models.Case.ticket == ticket))
    )
    assert status == "received"


@pytest.mark.parametrize("role", ["operator", "supervisor", "admin"])
async def test_only_an_integrity_officer_may_reveal_a_confidential_reporter(
    client: Client, stack: Stack, logged_in: LoggedIn, role: str
) -> None:
    ticket = await submit(
        client, text="Petugas kelurahan minta uang pelicin untuk KTP saya.", **CONFIDENTIAL
    )
    assert "-R" in ticket
    username = await logged_in(role)
    page = f"/console/cases/{case_id(stack, ticket)}"
    html = await (await client.get(page)).text()
    assert "Pelapor dirahasiakan" in html
    assert "/reveal" not in html  # no reveal form for this role
    response = await client.post(
        f"{page}/reveal", data={"csrf": csrf_of(html), "reason": "Permintaan penyidik kepolisian"}
    )
    assert response.status == 403
    text = await response.text()
    assert not any(secret in text for secret in SECRETS)

    def denied(session: Any) -> list[str]:
        return list(
            session.scalars(
                select(models.AuditEvent.action).where(
                    models.AuditEvent.case_id == case_id(stack, ticket),
                    models.AuditEvent.actor == username,
                )
            )
        )

    assert db(stack, denied) == ["reveal_denied"]


async def test_an_integrity_officer_reveals_with_a_reason_and_it_is_audited(
    client: Client, stack: Stack, logged_in: LoggedIn
) -> None:
    ticket = await submit(
        client, text="Ada pungli di loket perizinan, diminta Rp500.000.", **CONFIDENTIAL
    )
    username = await logged_in("integrity")
    page = f"/console/cases/{case_id(stack, ticket)}"
    html = await (await client.get(page)).text()
    assert not any(secret in html for secret in SECRETS)
    no_reason = await client.post(f"{page}/reveal", data={"csrf": csrf_of(html), "reason": " "})
    assert no_reason.status == 400
    assert "Bambang" not in await no_reason.text()
    revealed = await client.post(
        f"{page}/reveal", data={"csrf": csrf_of(html), "reason": "Konfirmasi kronologi ke pelapor"}
    )
    assert revealed.status == 200
    text = await revealed.text()
    assert "Bambang Sutrisno" in text
    assert "+6281399887766" in text
    assert "bambang.rahasia@example.org" in text
    assert "Konfirmasi kronologi ke pelapor" in text  # the audit trail, on the same page
    # The identity is shown in that one response, not on the page afterwards.
    after = await (await client.get(page)).text()
    assert "Bambang" not in after
    assert username in after and "MEMBUKA IDENTITAS PELAPOR" in after

    def reveals(session: Any) -> list[tuple[str, str | None]]:
        return [
            (e.actor, e.note)
            for e in session.scalars(
                select(models.AuditEvent).where(
                    models.AuditEvent.case_id == case_id(stack, ticket),
                    models.AuditEvent.action == "reveal",
                )
            )
        ]

    assert db(stack, reveals) == [(username, "Konfirmasi kronologi ke pelapor")]


async def test_only_a_supervisor_or_admin_may_export_and_reopen(
    client: Client, stack: Stack, logged_in: LoggedIn
) -> None:
    ticket = await submit(client)
    page = f"/console/cases/{case_id(stack, ticket)}"
    await logged_in("operator")
    assert (await client.get("/console/export.csv")).status == 403
    token = await form(client, page)
    rejected = await client.post(
        f"{page}/status",
        data={"csrf": token, "status": "rejected", "note": "Bukan aduan (iklan)."},
        allow_redirects=False,
    )
    assert rejected.status == 303
    reopen = await client.post(
        f"{page}/status", data={"csrf": token, "status": "received"}, allow_redirects=False
    )
    assert reopen.status == 403
    await logged_in("supervisor")
    token = await form(client, page)
    reopened = await client.post(
        f"{page}/status", data={"csrf": token, "status": "verified"}, allow_redirects=False
    )
    assert reopened.status == 303
    assert (await client.get("/console/export.csv")).status == 200


# Confidentiality everywhere


async def test_a_confidential_reporter_appears_in_no_page_and_no_export(
    client: Client, stack: Stack, logged_in: LoggedIn
) -> None:
    marker = uuid.uuid4().hex[:8]
    ticket = await submit(
        client, text=f"Korupsi dana bansos di kelurahan ({marker}), mohon ditindak.", **CONFIDENTIAL
    )
    cid = case_id(stack, ticket)
    for role in ("operator", "supervisor", "admin", "integrity"):
        await logged_in(role)
        pages = [
            "/console/",
            f"/console/?q={marker}",
            "/console/?confidential=yes",
            f"/console/cases/{cid}",
            "/console/dashboard",
            "/console/outbox",
            "/console/outbox?status=queued",
            "/console/outbox?status=failed",
        ]
        if role in ("supervisor", "admin"):
            pages.append("/console/export.csv")
        for path in pages:
            response = await client.get(path)
            assert response.status == 200, path
            body = await response.text()
            leaked = [secret for secret in SECRETS if secret in body]
            assert not leaked, f"{role} sees {leaked} on {path}"
        listing = await (await client.get(f"/console/?q={marker}")).text()
        assert ticket in listing and "Pelapor dirahasiakan" in listing
    await logged_in("supervisor")
    export = await (await client.get(f"/console/export.csv?q={marker}")).text()
    rows = list(csv.reader(io.StringIO(export.lstrip("\ufeff"))))
    assert rows[1][0] == ticket
    assert rows[1][6] == "Pelapor dirahasiakan"


# Moving a case along


async def test_a_status_change_is_audited_and_told_to_the_reporter_on_their_channel(
    client: Client, stack: Stack, logged_in: LoggedIn
) -> None:
    ticket = await submit(client, phone="0812-1111-2222", name="Siti Aminah")
    cid = case_id(stack, ticket)
    username = await logged_in("operator")
    page = f"/console/cases/{cid}"
    html = await (await client.get(page)).text()
    assert "Siti Aminah" in html and "+6281211112222" in html  # an open report shows its reporter
    response = await client.post(
        f"{page}/status",
        data={
            "csrf": csrf_of(html),
            "status": "verified",
            "note": "Dicek ke lokasi",
            "expected": "received",
        },
        allow_redirects=False,
    )
    assert response.status == 303
    assert response.headers["Location"] == f"{page}?done=status_notified"

    def events(session: Any) -> list[tuple[str, str | None, str, str | None]]:
        return [
            (e.actor, e.from_status, e.to_status, e.note)
            for e in session.scalars(
                select(models.StatusEvent)
                .where(models.StatusEvent.case_id == cid)
                .order_by(models.StatusEvent.id)
            )
        ]

    assert db(stack, events)[-1] == (username, "received", "verified", "Dicek ke lokasi")

    def notification(session: Any) -> models.Delivery | None:
        return session.scalar(
            select(models.Delivery).where(
                models.Delivery.case_id == cid, models.Delivery.kind == "status_changed"
            )
        )

    # The worker takes it; with no SMS provider configured it lands in the outbox.
    delivery = await eventually(
        lambda: (d := db(stack, notification)) is not None and d.status == "outbox" and d
    )
    assert delivery.channel == "sms"
    assert delivery.body == f"Aduan {ticket} kini berstatus: diverifikasi."
    event_id = db(
        stack,
        lambda s: s.scalar(
            select(models.StatusEvent.id).where(
                models.StatusEvent.case_id == cid, models.StatusEvent.to_status == "verified"
            )
        ),
    )
    assert delivery.dedupe_key == f"status:{cid}:{event_id}"
    outbox = await (await client.get("/console/outbox")).text()
    assert f"Aduan {ticket} kini berstatus: diverifikasi." in outbox
    page_now = await (await client.get(page)).text()
    assert "Dicek ke lokasi" in page_now and "diverifikasi" in page_now

    # A stale form (another operator moved it meanwhile) is refused, not applied twice.
    stale = await client.post(
        f"{page}/status",
        data={"csrf": csrf_of(html), "status": "dispatched", "expected": "received"},
    )
    assert stale.status == 409
    # Closing is internal: no message to the reporter.
    await client.post(f"{page}/status", data={"csrf": csrf_of(html), "status": "closed"})
    kinds = db(
        stack,
        lambda s: list(
            s.scalars(select(models.Delivery.kind).where(models.Delivery.case_id == cid))
        ),
    )
    assert kinds.count("status_changed") == 1


async def test_an_english_complaint_is_told_in_english(
    client: Client, stack: Stack, logged_in: LoggedIn
) -> None:
    ticket = await submit(
        client,
        text="The street light in front of my house has been broken for two weeks, please fix it.",
        email="resident@example.org",
    )
    cid = case_id(stack, ticket)
    await logged_in("operator")
    token = await form(client, f"/console/cases/{cid}")
    await client.post(f"/console/cases/{cid}/status", data={"csrf": token, "status": "resolved"})
    delivery = await eventually(
        lambda: db(
            stack,
            lambda s: s.scalar(
                select(models.Delivery).where(
                    models.Delivery.case_id == cid, models.Delivery.kind == "status_changed"
                )
            ),
        )
    )
    assert delivery.channel == "email"
    assert delivery.body == f"Complaint {ticket} is now: resolved."


async def test_a_reply_goes_out_on_the_reporters_channel(
    client: Client, stack: Stack, logged_in: LoggedIn
) -> None:
    ticket = await submit(client, phone="0812-3333-4444")
    cid = case_id(stack, ticket)
    await logged_in("operator")
    page = f"/console/cases/{cid}"
    token = await form(client, page)
    text = "Terima kasih, petugas PJU akan datang besok pagi."
    response = await client.post(
        f"{page}/reply", data={"csrf": token, "text": text}, allow_redirects=False
    )
    assert response.status == 303
    delivery = await eventually(
        lambda: db(
            stack,
            lambda s: s.scalar(
                select(models.Delivery).where(
                    models.Delivery.case_id == cid,
                    models.Delivery.kind == "operator_reply",
                    models.Delivery.status == "outbox",
                )
            ),
        )
    )
    assert delivery.body == text and delivery.channel == "sms"
    html = await (await client.get(page)).text()
    assert text in html and "Balasan petugas" in html


async def test_a_reporter_without_a_contact_cannot_be_replied_to(
    client: Client, stack: Stack, logged_in: LoggedIn
) -> None:
    cid = case_id(stack, await submit(client))
    await logged_in("operator")
    token = await form(client, f"/console/cases/{cid}")
    response = await client.post(
        f"/console/cases/{cid}/reply", data={"csrf": token, "text": "Halo"}
    )
    assert response.status == 400
    assert "tidak dapat dihubungi" in await response.text()


async def test_merge_then_unlink(client: Client, stack: Stack, logged_in: LoggedIn) -> None:
    first = await submit(client, text="Banjir di Jl. Sudirman setinggi lutut (A)")
    second = await submit(client, text="Jl. Sudirman banjir lagi, motor mogok (B)")
    a, b = case_id(stack, first), case_id(stack, second)
    await logged_in("operator")
    token = await form(client, f"/console/cases/{b}")
    merged = await client.post(
        f"/console/cases/{b}/merge",
        data={"csrf": token, "into": first.lower(), "note": "Kejadian sama"},
    )
    assert merged.status == 200
    html = await merged.text()
    assert "Aduan digabung." in html and first in html
    parent = await (await client.get(f"/console/cases/{a}")).text()
    assert second in parent  # among the other reports of the incident
    # Resolving the incident tells both reporters... neither has a contact here; and an
    # operator may not unlink.
    assert (await client.post(f"/console/cases/{b}/unlink", data={"csrf": token})).status == 403
    await logged_in("supervisor")
    token = await form(client, f"/console/cases/{b}")
    unlinked = await client.post(f"/console/cases/{b}/unlink", data={"csrf": token})
    assert unlinked.status == 200
    assert db(stack, lambda s: s.get(models.Case, b).status) == "received"


async def test_reassigning_the_topic_is_audited(
    client: Client, stack: Stack, logged_in: LoggedIn
) -> None:
    cid = case_id(stack, await submit(client))
    username = await logged_in("operator")
    token = await form(client, f"/console/cases/{cid}")
    response = await client.post(
        f"/console/cases/{cid}/topic",
        data={"csrf": token, "topic": "drainase", "note": "Salah topik"},
    )
    assert response.status == 200
    html = await response.text()
    assert "Topik diubah." in html and "Salah topik" in html and username in html
    assert db(stack, lambda s: s.get(models.Case, cid).topic) == "drainase"


# The intake, live


async def test_the_live_feed_sends_a_new_case_within_a_second(
    client: Client, stack: Stack, logged_in: LoggedIn
) -> None:
    await logged_in("operator")
    marker = uuid.uuid4().hex[:8]
    async with client.get("/console/events") as stream:
        assert stream.status == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert (await stream.content.readline()).startswith(b"retry:")
        started = time.monotonic()
        ticket = await submit(client, text=f"Pohon tumbang menutup jalan ({marker})")
        event: dict[str, Any] = {}
        while not event:
            line = await asyncio.wait_for(stream.content.readline(), 5)
            if line.startswith(b'data: {"id"'):
                candidate = json.loads(line[6:])
                if candidate["ticket"] == ticket:
                    event = candidate
        assert time.monotonic() - started < 1.5  # including the API round trip
    assert event["title"].endswith(f"({marker})")
    assert event["status_name"] == "diterima"
    assert event["reporter"] == "Tanpa kontak"


async def test_the_intake_filters_and_counts(
    client: Client, stack: Stack, logged_in: LoggedIn
) -> None:
    marker = uuid.uuid4().hex[:8]
    await submit(client, text=f"Sampah menumpuk di pasar ({marker})")
    await submit(client, text=f"Jalan berlubang di depan sekolah ({marker})")
    await logged_in("operator")
    html = await (await client.get(f"/console/?q={marker}")).text()
    assert html.count(f"({marker})") == 2
    assert '<span id="total">2</span>' in html
    assert 'data-count-channel="api">2<' in html
    only = await (await client.get(f"/console/?q={marker}&topic=sampah")).text()
    assert only.count(f"({marker})") == 1
    assert "Sampah menumpuk" in only
    english = await (await client.get(f"/console/?q={marker}&lang=en")).text()
    assert "Intake" in english and "received" in english


async def test_the_dashboard_draws_its_charts_on_the_server(
    client: Client, logged_in: LoggedIn
) -> None:
    await submit(client)
    await logged_in("operator")
    response = await client.get("/console/dashboard")
    html = await response.text()
    assert response.status == 200
    assert html.count("<svg") == 3
    assert "<script" not in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


async def test_photos_are_shown_to_logged_in_operators_only(
    client: Client, stack: Stack, logged_in: LoggedIn
) -> None:
    data = FormData()
    data.add_field("text", f"Got mampet depan SD ({uuid.uuid4().hex[:8]})")
    data.add_field("photo", png_bytes(), filename="got.png", content_type="image/png")
    response = await client.post("/api/v1/complaints", data=data)
    assert response.status == 201, await response.text()
    cid = case_id(stack, (await response.json())["ticket"])
    await logged_in("operator")
    html = await (await client.get(f"/console/cases/{cid}")).text()
    found = re.search(r'<img src="(/console/attachments/\d+)"', html)
    assert found, "the photo is not shown on the case page"
    photo = await client.get(found.group(1))
    assert photo.status == 200
    assert photo.content_type == "image/png"
    assert await photo.read() == png_bytes()
    assert "sandbox" in photo.headers["Content-Security-Policy"]
    client.session.cookie_jar.clear()
    anonymous = await client.get(found.group(1), allow_redirects=False)
    assert anonymous.status == 303
