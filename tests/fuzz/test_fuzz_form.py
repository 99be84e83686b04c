"""The web form, POST /: 10,000 generated urlencoded and multipart submissions, never a 5xx."""

from __future__ import annotations

import io
from urllib.parse import urlencode

import pytest
from aiohttp import FormData
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.conftest import (
    FUZZ_SETTINGS,
    INPUTS_PER_ENTRY_POINT,
    Gateway,
    any_text,
    gather_limited,
    no_errors_logged,
    odd_text,
)


def header_safe(text: str) -> str:
    """aiohttp's client sends only printable ASCII in a part's name and filename."""
    return "".join(c for c in text if " " < c < "\x7f") or "_"


pytestmark = [
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning"),
    # aiohttp's client warns about a big text field given as str: the test's side, not aduan's.
    pytest.mark.filterwarnings("ignore:Sending a large body directly:ResourceWarning"),
]
BATCH = 50
FIELDS = ["text", "name", "phone", "email", "topic", "lat", "lon", "address", "lang",
          "form_token", "photo"]  # fmt: skip
value = any_text | st.sampled_from(
    ["infrastruktur", "pungli", "-6.59", "106.8", "1e400", "NaN", "+6281234567890", "a@b.co"]
)
pair = st.tuples(st.sampled_from(FIELDS) | odd_text, value)
upload = st.tuples(
    st.sampled_from(["photo", "text", "file"]) | odd_text,
    st.binary(max_size=200) | st.sampled_from([b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, b""]),
    st.none() | odd_text,  # filename
    st.sampled_from(["image/png", "image/jpeg", "text/plain", "application/octet-stream", "x"]),
)
# (kind, pairs, uploads)
submission = st.tuples(
    st.sampled_from(["urlencoded", "multipart"]),
    st.lists(pair, max_size=8).map(lambda p: [("text", "Jalan rusak"), *p]) | st.lists(pair),
    st.lists(upload, max_size=2),
)


def test_the_web_form_answers_every_generated_submission_without_a_5xx(gw: Gateway) -> None:
    async def post(kind: str, pairs: list[tuple[str, str]], uploads: list) -> tuple[int, str]:  # type: ignore[type-arg]
        if kind == "urlencoded":
            body = urlencode(pairs).encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            async with gw.client.post("/", data=io.BytesIO(body), headers=headers) as r:
                return r.status, await r.text()
        form = FormData()
        for name, text in pairs:
            form.add_field(header_safe(name), text)
        for name, data, filename, content_type in uploads:
            form.add_field(
                header_safe(name),
                io.BytesIO(data),
                filename=header_safe(filename or "f"),
                content_type=content_type,
            )
        async with gw.client.post("/", data=form) as r:
            return r.status, await r.text()

    @settings(FUZZ_SETTINGS, max_examples=INPUTS_PER_ENTRY_POINT // BATCH + 5)
    @given(st.lists(submission, min_size=BATCH, max_size=BATCH))
    def batch(submissions: list[tuple[str, list[tuple[str, str]], list]]) -> None:  # type: ignore[type-arg]
        answers = gw.run(gather_limited([lambda s=s: post(*s) for s in submissions]))
        gw.count("form", len(submissions))
        for sub, (status, text) in zip(submissions, answers, strict=True):
            assert status < 500, (status, text[:300], sub)

    batch()
    assert gw.sent["form"] >= INPUTS_PER_ENTRY_POINT
    no_errors_logged(gw)
