"""A fake Meta Graph API for WhatsApp: sends messages (records them) and serves media.

Sending can be made to fail (see `FakeServer.fail_next`): `FakeGraph.error_fault` builds
the fault for one of the Graph API's error answers. `accepted()` lists the messages Meta
would really send.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.server import FakeServer, Fault


@dataclass
class FakeGraph(FakeServer):
    access_token: str = "fake-graph-access-token"
    phone_number_id: str = "106540352242922"
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    # Numbers whose 24-hour window Meta considers closed: free text to them is refused.
    closed_windows: set[str] = field(default_factory=set)
    accepted_messages: list[dict[str, Any]] = field(default_factory=list)

    @staticmethod
    def error_fault(code: int, message: str, status: int = 400, delay: float = 0) -> Fault:
        """The Graph API's error answer for error `code`."""
        return Fault(
            status,
            {"error": {"message": message, "type": "OAuthException", "code": code}},
            delay=delay,
        )

    def accepted(self, to: str | None = None) -> list[dict[str, Any]]:
        """The messages accepted for sending (answered to a client that got the answer)."""
        with self._lock:
            return [m for m in self.accepted_messages if to is None or m.get("to") == to]

    def sent(self) -> list[dict[str, Any]]:
        """The messages aduan asked the Graph API to send, as JSON."""
        return [r.json for r in self.received("POST", "/messages")]

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.access_token}"

    @staticmethod
    def _error(code: int, message: str, status: int = 400) -> web.Response:
        return web.json_response(
            {"error": {"message": message, "type": "OAuthException", "code": code}},
            status=status,
        )

    def routes(self, app: web.Application) -> None:
        async def messages(request: web.Request) -> web.Response:
            if not self._authorised(request):
                return self._error(190, "Invalid OAuth access token.", 401)
            if request.match_info["phone"] != self.phone_number_id:
                return self._error(100, "Unsupported post request.")
            body = await request.json()
            to = str(body.get("to"))
            if body.get("type") == "text" and to in self.closed_windows:
                return self._error(131047, "Re-engagement message")
            failure = await self.faulty(request, to)
            if failure is not None:
                return failure
            if self.client_gone(request):
                return self._error(131000, "Something went wrong", 500)
            with self._lock:
                self.accepted_messages.append(body)
            return web.json_response(
                {
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": to, "wa_id": to}],
                    "messages": [{"id": "wamid.FAKE" + secrets.token_hex(12)}],
                }
            )

        async def media_info(request: web.Request) -> web.Response:
            if not self._authorised(request):
                return self._error(190, "Invalid OAuth access token.", 401)
            media_id = request.match_info["media"]
            if media_id not in self.media:
                return self._error(100, "Unsupported get request.")
            data, content_type = self.media[media_id]
            return web.json_response(
                {
                    "messaging_product": "whatsapp",
                    "url": f"{self.url}/download/{media_id}?ext=1&hash=abc",
                    "mime_type": content_type,
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "file_size": len(data),
                    "id": media_id,
                }
            )

        async def download(request: web.Request) -> web.Response:
            if not self._authorised(request):
                return web.Response(status=401)
            data, content_type = self.media[request.match_info["media"]]
            return web.Response(body=data, content_type=content_type)

        app.router.add_post("/{version}/{phone}/messages", messages)
        app.router.add_get("/download/{media}", download)
        app.router.add_get("/{version}/{media}", media_info)
