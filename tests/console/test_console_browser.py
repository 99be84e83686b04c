"""The console in real headless Chromium (Debian's package), driven by Playwright.

aduan runs as an operator runs it: `aduan operator add`, `aduan serve --no-worker` and
`aduan worker` as processes, SMS coming in through the signed Twilio webhook, and the
replies going out to a fake Twilio API on loopback.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from twilio.request_validator import RequestValidator

from tests.conftest import ROOT, free_port, settings_env, stop_process
from tests.fakes.twilio_api import FakeTwilio

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = ROOT / "artifacts"
PASSWORD = "sandi-petugas-piket-24jam"
SMS_FROM = "+6281234567890"
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

try:
    from playwright.sync_api import Browser, Page, Playwright, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None  # type: ignore[assignment]

pytestmark = pytest.mark.skipif(
    sync_playwright is None or not CHROMIUM.exists(),
    reason="browser tests need Debian's chromium (/usr/bin/chromium, installed by .ci/run) "
    "and the playwright package (the test extra)",
)


@dataclass
class Console:
    base: str
    env: dict[str, str]
    twilio: FakeTwilio
    browser: Browser
    users: dict[str, str]

    def page(self) -> Page:
        context = self.browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.dialogs = dialogs  # type: ignore[attr-defined]
        return page

    def login(self, role: str) -> Page:
        page = self.page()
        page.goto(f"{self.base}/console/")
        assert "/console/login" in page.url
        page.fill("#username", self.users[role])
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{self.base}/console/")
        return page

    def sms(self, body: str, sender: str = SMS_FROM) -> None:
        """An SMS as Twilio delivers it: form-encoded and signed with the auth token."""
        sid = "SM" + secrets.token_hex(16)
        fields = {
            "SmsMessageSid": sid,
            "MessageSid": sid,
            "SmsSid": sid,
            "AccountSid": self.twilio.account_sid,
            "From": sender,
            "To": "+14155550100",
            "Body": body,
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsStatus": "received",
            "ApiVersion": "2010-04-01",
        }
        url = f"{self.base}/webhooks/twilio"
        signature = RequestValidator(self.twilio.auth_token).compute_signature(url, fields)
        request = urllib.request.Request(  # noqa: S310 - loopback
            url,
            data=urllib.parse.urlencode(fields).encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            assert response.status == 200

    def api(self, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(  # noqa: S310 - loopback
            f"{self.base}/api/v1/complaints",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310 - loopback
            result: dict[str, Any] = json.loads(response.read())
            return result


def _aduan(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _wait_up(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"aduan serve exited:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1):  # noqa: S310 - loopback
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"aduan serve did not come up:\n{log.read_text()}")


@pytest.fixture(scope="module")
def console(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    tmp = tmp_path_factory.mktemp("console-browser")
    twilio = FakeTwilio().start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = settings_env(
        tmp,
        redis_url,
        f"sqlite:///{tmp / 'cases.sqlite3'}",
        ADUAN_QUEUE=f"aduan-console-{secrets.token_hex(3)}",
        ADUAN_HTTP_PORT=str(port),
        ADUAN_SMTP_PORT=str(free_port()),
        ADUAN_PUBLIC_URL=base,
        ADUAN_TWILIO_ACCOUNT_SID=twilio.account_sid,
        ADUAN_TWILIO_AUTH_TOKEN=twilio.auth_token,
        ADUAN_TWILIO_SMS_FROM="+14155550100",
        ADUAN_TWILIO_API_URL=twilio.url,
    )
    users = {}
    for role in ("operator", "supervisor", "integrity"):
        users[role] = f"{role}-{secrets.token_hex(2)}"
        out = _aduan(
            env, "operator", "add", users[role], "--role", role, "--password-stdin", stdin=PASSWORD
        )
        assert f"added as {role}" in out
    log = tmp / "aduan.log"
    with log.open("ab") as handle:
        serve = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--no-worker"],
            env={**os.environ, **env},
            cwd=ROOT,
            stdout=handle,
            stderr=handle,
        )
        worker = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "worker"],
            env={**os.environ, **env},
            cwd=ROOT,
            stdout=handle,
            stderr=handle,
        )
    playwright: Playwright | None = None
    try:
        _wait_up(base, serve, log)
        playwright = sync_playwright().start()
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        ARTIFACTS.mkdir(exist_ok=True)
        yield Console(base, env, twilio, browser, users)
        browser.close()
    finally:
        if playwright is not None:
            playwright.stop()
        stop_process(serve)
        stop_process(worker)
        twilio.stop()
        for secret in SECRETS:
            assert secret not in log.read_text(), "a confidential reporter reached the log"


def _eventually(check: Any, within: float = 10.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        time.sleep(0.05)


def test_an_sms_appears_live_is_moved_along_and_the_reporter_hears_of_it(
    console: Console,
) -> None:
    page = console.login("operator")
    page.wait_for_selector("#live[data-state=live]")
    page.evaluate("window.__sameDocument = true")
    marker = secrets.token_hex(4)
    # Markup in a complaint is text to an operator: the normaliser strips real tags, and
    # what was written as entities comes out as literal angle brackets.
    body = (
        f"&lt;script&gt;window.__pwned=1&lt;/script&gt; Jalan berlubang ({marker})\n"
        'Di Jl. Pajajaran &lt;img src=x onerror="window.__pwned=2;alert(1)"&gt; <b>tolong</b>'
    )
    started = time.monotonic()
    console.sms(body)
    row = page.locator("#intake-rows tr", has_text=marker)
    row.wait_for(timeout=5000)
    arrived = time.monotonic() - started
    assert arrived < 3, f"the SMS took {arrived:.1f}s to show"  # queue, worker, feed, browser
    assert page.evaluate("window.__sameDocument") is True  # no reload
    title = row.locator("td.title").inner_text()
    assert "<script>window.__pwned=1</script>" in title
    assert row.locator("td.channel").inner_text() == "sms"
    assert row.locator("td.reporter").inner_text() == SMS_FROM
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert row.locator("script, img").count() == 0
    assert page.locator("#total").inner_text() == "1"
    assert page.locator("[data-count-channel=sms]").inner_text() == "1"
    assert page.locator("[data-count-topic=infrastruktur]").inner_text() == "1"
    page.wait_for_timeout(300)  # let the highlight settle for the picture
    page.screenshot(path=str(ARTIFACTS / "console-intake.png"), full_page=True)

    row.locator("td.ticket a").click()
    page.wait_for_selector("#case-status")
    ticket = page.locator("h1 .ticket").inner_text()
    text = page.locator(".message.in .text").first.inner_text()
    assert "<script>window.__pwned=1</script>" in text
    assert '<img src=x onerror="window.__pwned=2;alert(1)">' in text
    assert page.locator(".message.in .text img, .message.in .text script").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"

    assert page.locator("#status").input_value() == "verified"  # the usual next step
    page.fill("#status-note", "Dicek petugas UPT Jalan, lubang 1 m.")
    page.click("#status-form button[type=submit]")
    page.wait_for_selector(".notice")
    assert "pelapor diberi tahu" in page.locator(".notice").inner_text()
    assert page.locator("#case-status").inner_text() == "diverifikasi"
    trail = page.locator("#audit").inner_text()
    assert console.users["operator"] in trail
    assert "Dicek petugas UPT Jalan, lubang 1 m." in trail

    # The fake Twilio API receives the notification, in Indonesian, to the reporter's number.
    sent = _eventually(
        lambda: [m for m in console.twilio.sent() if "kini berstatus" in m.get("Body", "")]
    )
    assert sent[0]["To"] == SMS_FROM
    assert sent[0]["Body"] == f"Aduan {ticket} kini berstatus: diverifikasi."

    def shows_sent() -> bool:
        page.reload()
        return (
            page.locator(".message.out", has_text="kini berstatus")
            .locator(".delivery-sent")
            .count()
            == 1
        )

    _eventually(shows_sent)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.dialogs == []  # type: ignore[attr-defined]
    page.screenshot(path=str(ARTIFACTS / "console-case.png"), full_page=True)


def test_a_confidential_reporter_is_hidden_until_an_integrity_officer_reveals_them(
    console: Console,
) -> None:
    marker = secrets.token_hex(4)
    created = console.api(
        {"text": f"Petugas kelurahan minta uang pelicin Rp200.000 ({marker})", **CONFIDENTIAL}
    )
    ticket = created["ticket"]

    operator = console.login("operator")
    operator.goto(f"{console.base}/console/?q={marker}")
    row = operator.locator("#intake-rows tr", has_text=ticket)
    assert row.locator("td.reporter").inner_text() == "Pelapor dirahasiakan"
    seen = {"intake": operator.content()}
    row.locator("td.ticket a").click()
    operator.wait_for_selector("#case-status")
    case_url = operator.url
    assert operator.locator("#reporter").inner_text() == "Pelapor dirahasiakan"
    assert operator.locator("form.reveal").count() == 0
    seen["case"] = operator.content()
    operator.goto(f"{console.base}/console/dashboard")
    seen["dashboard"] = operator.content()
    operator.goto(f"{console.base}/console/outbox")
    seen["outbox"] = operator.content()
    supervisor = console.login("supervisor")
    export = supervisor.request.get(f"{console.base}/console/export.csv?q={marker}")
    assert export.ok
    seen["export"] = export.text()
    assert ticket in seen["export"]
    for where, source in seen.items():
        leaked = [secret for secret in SECRETS if secret in source]
        assert not leaked, f"{leaked} in the {where}"

    integrity = console.login("integrity")
    integrity.goto(case_url)
    integrity.fill("#reason", "Klarifikasi kronologi atas permintaan Inspektorat")
    integrity.click("form.reveal button[type=submit]")
    integrity.wait_for_selector("#revealed")
    revealed = integrity.locator("#revealed").inner_text()
    assert "Bambang Sutrisno" in revealed
    assert "+6281399887766" in revealed
    assert "bambang.rahasia@example.org" in revealed
    reveal_row = integrity.locator("#audit tr.audit-reveal")
    assert console.users["integrity"] in reveal_row.inner_text()
    assert "Klarifikasi kronologi atas permintaan Inspektorat" in reveal_row.inner_text()

    # Everyone else sees that it was revealed, by whom and why, but still not who it is.
    operator.goto(case_url)
    trail = operator.locator("#audit tr.audit-reveal").inner_text()
    assert console.users["integrity"] in trail
    assert "Klarifikasi kronologi" in trail
    assert not [secret for secret in SECRETS if secret in operator.content()]
    operator.goto(f"{console.base}/console/")
    assert operator.locator("[data-count-channel=sms]").inner_text() != ""
    operator.screenshot(path=str(ARTIFACTS / "console-intake-two-channels.png"), full_page=True)
