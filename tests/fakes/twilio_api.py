"""A fake Twilio REST API: sends messages (records them) and serves message media.

Sending can be made to fail (see `FakeServer.fail_next`): `FakeTwilio.error` builds the
fault for one of Twilio's error answers. `accepted()` lists the messages Twilio would
really send: answered 201 to a client that was still waiting for the answer.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes.server import FakeServer, Fault, Recorded


@dataclass
class FakeTwilio(FakeServer):
    account_sid: str = "AC" + "0" * 32
    auth_token: str = "fake-twilio-auth-token"
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    accepted_messages: list[dict[str, str]] = field(default_factory=list)
    # Answered after the client had stopped waiting: never sent.
    abandoned_messages: list[dict[str, str]] = field(default_factory=list)

    @staticmethod
    def error(
        status: int, code: int, message: str, *, retry_after: int | None = None, delay: float = 0
    ) -> Fault:
        """Twilio's error answer, as its API gives it (the message may quote the number)."""
        return Fault(
            status,
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
            {} if retry_after is None else {"Retry-After": str(retry_after)},
            delay,
        )

    def settings(self, sms_from: str, whatsapp_from: str | None = None) -> dict[str, str]:
        """The settings that send aduan's Twilio replies to this fake, as its environment."""
        env = {
            "ADUAN_TWILIO_ACCOUNT_SID": self.account_sid,
            "ADUAN_TWILIO_AUTH_TOKEN": self.auth_token,
            "ADUAN_TWILIO_SMS_FROM": sms_from,
            "ADUAN_TWILIO_API_URL": self.url,
        }
        if whatsapp_from is not None:
            env["ADUAN_TWILIO_WHATSAPP_FROM"] = whatsapp_from
        return env

    def abandoned(self, to: str | None = None) -> list[dict[str, str]]:
        """Requests answered only after the client had timed out and gone."""
        with self._lock:
            return [m for m in self.abandoned_messages if to is None or m.get("To") == to]

    def accepted(self, to: str | None = None) -> list[dict[str, str]]:
        """The messages accepted for sending (201 to a client that got the answer)."""
        with self._lock:
            return [m for m in self.accepted_messages if to is None or m.get("To") == to]

    def media_url(self, message_sid: str, media_sid: str) -> str:
        account = f"{self.url}/2010-04-01/Accounts/{self.account_sid}"
        return f"{account}/Messages/{message_sid}/Media/{media_sid}"

    def sent(self) -> list[dict[str, str]]:
        """The messages aduan asked Twilio to send, as form fields."""
        return [r.form for r in self.received("POST", "/Messages.json")]

    def media_requests(self) -> list[Recorded]:
        return self.received("GET", "/Media/") + self.received("GET", "/storage/")

    def _authorised(self, request: web.Request) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return request.headers.get("Authorization") == f"Basic {expected}"

    def routes(self, app: web.Application) -> None:
        async def create_message(request: web.Request) -> web.Response:
            if not self._authorised(request) or request.match_info["sid"] != self.account_sid:
                return web.json_response(
                    {"code": 20003, "message": "Authenticate", "status": 401}, status=401
                )
            form = await request.post()
            failure = await self.faulty(request, str(form.get("To")))
            if failure is not None:
                return failure
            if self.client_gone(request):
                # It gave up waiting: Twilio never created this message.
                with self._lock:
                    self.abandoned_messages.append({k: str(v) for k, v in form.items()})
                return web.json_response({"code": 20500, "status": 500}, status=500)
            sid = "SM" + secrets.token_hex(16)
            with self._lock:
                self.accepted_messages.append({**{k: str(v) for k, v in form.items()}, "Sid": sid})
            return web.json_response(
                {
                    "sid": sid,
                    "account_sid": self.account_sid,
                    "status": "queued",
                    "to": form.get("To"),
                    "from": form.get("From"),
                    "body": form.get("Body"),
                    "num_segments": "1",
                    "direction": "outbound-api",
                    "api_version": "2010-04-01",
                },
                status=201,
            )

        async def media(request: web.Request) -> web.Response:
            if not self._authorised(request):
                return web.Response(status=401)
            media_sid = request.match_info["media"]
            if media_sid not in self.media:
                return web.Response(status=404)
            # Twilio redirects to short-lived storage, which refuses a second credential.
            raise web.HTTPTemporaryRedirect(f"/storage/{media_sid}")

        async def storage(request: web.Request) -> web.Response:
            if "Authorization" in request.headers:
                return web.Response(status=400, text="Only one auth mechanism allowed")
            data, content_type = self.media[request.match_info["media"]]
            return web.Response(body=data, content_type=content_type)

        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", create_message)
        app.router.add_get("/2010-04-01/Accounts/{sid}/Messages/{message}/Media/{media}", media)
        app.router.add_get("/storage/{media}", storage)
