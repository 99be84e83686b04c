"""The media job: photos and files that came as provider links, fetched and kept.

Twilio gives a media URL on its API (basic auth with the account's credentials); the
WhatsApp Cloud API gives a media id to resolve through the Graph API, whose answer is a
short-lived download URL (bearer token). Ids and URLs expire, so this runs right after
the message is stored. What is too large or not an accepted type is not kept: its row
stays with the provider link and the size that was announced, and no data.
"""

from __future__ import annotations

import hashlib
import logging
import urllib.error
import urllib.request
import uuid
from base64 import b64encode
from dataclasses import dataclass
from typing import Any

from rq import Retry
from sqlalchemy import select

from channels.meta import MEDIA_PREFIX
from channels.web import sniff_image
from normalizer.complaint import Complaint
from workers import models
from workers.context import Context, current
from workers.senders.meta import GRAPH_VERSION, GraphRefusal, GraphUnavailable, graph_call

log = logging.getLogger("aduan.media")

MAX_MEDIA_BYTES = 16 * 1024 * 1024  # WhatsApp's own limit for video and audio
ACCEPTED_TYPES = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "image/heic",
        "image/heif",
        "video/mp4",
        "video/3gpp",
        "audio/ogg",
        "audio/opus",
        "audio/mpeg",
        "audio/amr",
        "audio/aac",
        "audio/mp4",
        "application/pdf",
    }
)
TIMEOUT_SECONDS = 30
MEDIA_RETRY = Retry(max=5, interval=[5, 30, 120, 600, 1800])


class MediaUnavailable(Exception):
    """Some media could not be fetched this time; the job is retried for them."""


@dataclass(frozen=True)
class Fetched:
    data: bytes
    content_type: str


@dataclass(frozen=True)
class Refused:
    reason: str
    size: int | None = None


def enqueue_media(context: Context, complaints: list[Complaint]) -> None:
    keys = [
        c.idempotency_key
        for c in complaints
        if any(a.url and a.data_b64 is None for a in c.attachments)
    ]
    if keys:
        context.queue.enqueue(
            fetch_media,
            keys,
            job_id=f"media-{uuid.uuid4().hex}",
            retry=MEDIA_RETRY,
            failure_ttl=30 * 24 * 3600,
            description=f"fetch media of {len(keys)} message(s)",
        )


def fetch_media(keys: list[str]) -> dict[str, int]:
    """RQ job: fetch every attachment of these messages that is still only a link."""
    context = current()
    with context.sessions() as session:
        pending = session.execute(
            select(
                models.Attachment.id,
                models.Attachment.url,
                models.Attachment.content_type,
                models.Message.provider,
            )
            .join(models.Message, models.Attachment.message_id == models.Message.id)
            .where(
                models.Message.idempotency_key.in_(keys),
                models.Attachment.data.is_(None),
                models.Attachment.size.is_(None),
                models.Attachment.url.is_not(None),
            )
            .order_by(models.Attachment.id)
        ).all()
    counts = {"stored": 0, "refused": 0, "waiting": 0}
    for row in pending:
        try:
            result = fetch(context, row.provider, str(row.url), row.content_type)
        except MediaUnavailable as exc:
            log.warning("attachment %s not fetched yet: %s", row.id, exc)
            counts["waiting"] += 1
            continue
        _keep(context, row.id, result)
        counts["stored" if isinstance(result, Fetched) else "refused"] += 1
    if counts["waiting"]:
        raise MediaUnavailable(f"{counts['waiting']} attachment(s) to fetch again")
    return counts


def _keep(context: Context, attachment_id: int, result: Fetched | Refused) -> None:
    with context.sessions() as session, session.begin():
        attachment = session.get_one(models.Attachment, attachment_id)
        if isinstance(result, Fetched):
            attachment.data = result.data
            attachment.size = len(result.data)
            attachment.sha256 = hashlib.sha256(result.data).hexdigest()
            attachment.content_type = result.content_type
            log.info("attachment %s stored (%s)", attachment_id, result.content_type)
        else:
            # A known size with no data marks it as looked at and refused.
            attachment.size = result.size if result.size is not None else 0
            log.warning("attachment %s not kept: %s", attachment_id, result.reason)


def fetch(context: Context, provider: str, url: str, claimed_type: str) -> Fetched | Refused:
    settings = context.settings
    if provider == "twilio":
        if not url.startswith(settings.twilio_api_url + "/"):
            # Credentials go only to the Twilio API, never to a URL a request named.
            return Refused("the media URL is not on the Twilio API")
        auth = None
        if settings.twilio_account_sid and settings.twilio_auth_token:
            pair = f"{settings.twilio_account_sid}:{settings.twilio_auth_token}".encode()
            auth = f"Basic {b64encode(pair).decode()}"
        return download(url, auth, claimed_type)
    if provider == "meta" and url.startswith(MEDIA_PREFIX):
        if not settings.meta_access_token:
            return Refused("ADUAN_META_ACCESS_TOKEN is not set")
        media_id = url[len(MEDIA_PREFIX) :]
        try:
            info = graph_call(
                f"{settings.meta_graph_url}/{GRAPH_VERSION}/{media_id}", settings.meta_access_token
            )
        except GraphUnavailable as exc:
            raise MediaUnavailable(str(exc)) from None
        except GraphRefusal as exc:
            return Refused(f"the Graph API refused the media id: {exc}")
        location = info.get("url")
        if not isinstance(location, str) or not location.startswith(("https://", "http://")):
            return Refused("the Graph API gave no download URL")
        declared = _int(info.get("file_size"))
        if declared is not None and declared > MAX_MEDIA_BYTES:
            return Refused(f"{declared} bytes is over the limit", declared)
        mime = str(info.get("mime_type") or claimed_type)
        return download(location, f"Bearer {settings.meta_access_token}", mime)
    return Refused(f"no way to fetch media from provider {provider!r}")


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def download(url: str, authorization: str | None, claimed_type: str) -> Fetched | Refused:
    if not url.startswith(("https://", "http://")):
        return Refused("the media URL is not http(s)")
    request = urllib.request.Request(url)  # noqa: S310 - http(s) only, checked above
    if authorization:
        # Not repeated on a redirect: Twilio redirects to storage that must not see it.
        request.add_unredirected_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            declared = _int(response.headers.get("Content-Length"))
            if declared is not None and declared > MAX_MEDIA_BYTES:
                return Refused(f"{declared} bytes is over the limit", declared)
            content_type = (response.headers.get_content_type() or "").lower()
            data = response.read(MAX_MEDIA_BYTES + 1)
    except urllib.error.HTTPError as exc:
        if exc.code in (408, 429) or exc.code >= 500:
            raise MediaUnavailable(f"HTTP {exc.code}") from None
        return Refused(f"the provider answered HTTP {exc.code}")
    except OSError as exc:
        raise MediaUnavailable(type(exc).__name__) from None
    if len(data) > MAX_MEDIA_BYTES:
        return Refused(f"more than {MAX_MEDIA_BYTES} bytes", len(data))
    if content_type in ("", "application/octet-stream", "binary/octet-stream"):
        content_type = claimed_type.split(";")[0].strip().lower()
    sniffed = sniff_image(data)
    if content_type.startswith("image/"):
        if sniffed is None:
            return Refused(f"announced as {content_type} but is not an image", len(data))
        content_type = sniffed
    if content_type not in ACCEPTED_TYPES:
        return Refused(f"{content_type or 'unknown type'} is not accepted", len(data))
    return Fetched(data, content_type)
