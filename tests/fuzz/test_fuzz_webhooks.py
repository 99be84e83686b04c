"""Twilio and Meta webhooks with valid signatures over generated fields: never a 5xx."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from tests.channels.harness import SECRETS
from tests.fuzz.conftest import (
    FUZZ_SETTINGS,
    INPUTS_PER_ENTRY_POINT,
    PUBLIC_URL,
    Gateway,
    any_text,
    gather_limited,
    json_values,
    no_errors_logged,
    odd_text,
)

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
BATCH = 50
TWILIO_TOKEN = SECRETS["ADUAN_TWILIO_AUTH_TOKEN"]
META_SECRET = SECRETS["ADUAN_META_APP_SECRET"]

# --- Twilio -------------------------------------------------------------------------------

TWILIO_FIELDS = [
    "MessageSid", "SmsMessageSid", "SmsSid", "From", "To", "Body", "NumMedia", "MediaUrl0",
    "MediaContentType0", "MediaUrl1", "Latitude", "Longitude", "Address", "Label",
    "ProfileName", "OriginalRepliedMessageSid", "WaId", "AccountSid",
]  # fmt: skip
twilio_value = any_text | st.sampled_from(
    ["SM" + "a" * 32, "whatsapp:+6281234567890", "sms:+1", "tel:0812", "fax:+1", "+6281234567890",
     "0", "1", "10", "11", "-1", " 2 ", "https://api.twilio.com/m/1", "ftp://x", "NaN", "inf",
     "1e400", "-6.59", "106.8", "image/jpeg", ""]
)  # fmt: skip
twilio_pair = st.tuples(st.sampled_from(TWILIO_FIELDS) | odd_text, twilio_value)


class _Params(dict[str, list[str]]):
    def getall(self, name: str) -> list[str]:
        return self[name]


@st.composite
def twilio_form(draw: st.DrawFn) -> list[tuple[str, str]]:
    pairs = draw(st.lists(twilio_pair, max_size=8))
    if draw(st.integers(0, 3)):  # mostly a message that has the required fields
        pairs = [("MessageSid", draw(twilio_value)), ("From", draw(twilio_value)), *pairs]
    return pairs


def sign_twilio(pairs: list[tuple[str, str]]) -> tuple[bytes, str]:
    body = urlencode(pairs).encode()
    params = _Params()
    for key, value in pairs:
        params.setdefault(key, []).append(value)
    url = f"{PUBLIC_URL}/webhooks/twilio"
    return body, RequestValidator(TWILIO_TOKEN).compute_signature(url, params)


def test_the_twilio_webhook_answers_every_signed_form_without_a_5xx(gw: Gateway) -> None:
    async def post(pairs: list[tuple[str, str]]) -> tuple[int, str]:
        body, signature = sign_twilio(pairs)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        }
        async with gw.client.post("/webhooks/twilio", data=io.BytesIO(body), headers=headers) as r:
            return r.status, await r.text()

    @settings(FUZZ_SETTINGS, max_examples=INPUTS_PER_ENTRY_POINT // BATCH + 5)
    @given(st.lists(twilio_form(), min_size=BATCH, max_size=BATCH))
    def batch(forms: list[list[tuple[str, str]]]) -> None:
        answers = gw.run(gather_limited([lambda f=f: post(f) for f in forms]))
        gw.count("twilio", len(forms))
        for pairs, (status, text) in zip(forms, answers, strict=True):
            assert status < 500, (status, text[:300], pairs)
            # A valid signature must be accepted: otherwise the parser was never reached.
            if len(urlencode(pairs)) <= 64 * 1024:
                assert status != 403, (text[:300], pairs)

    batch()
    assert gw.sent["twilio"] >= INPUTS_PER_ENTRY_POINT
    no_errors_logged(gw)


# --- Meta (WhatsApp Cloud API) ------------------------------------------------------------


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The expected shape most of the time, any JSON value sometimes."""
    return st.one_of(strategy, strategy, strategy, json_values)


KINDS = ["text", "image", "audio", "video", "document", "sticker", "location", "interactive",
         "button", "reaction", "contacts", "unsupported", "system", "order", ""]  # fmt: skip
digits = st.from_regex(r"\A[0-9]{1,15}\Z") | any_text
meta_message = st.fixed_dictionaries(
    {"from": maybe(digits), "id": maybe(any_text), "type": maybe(st.sampled_from(KINDS))},
    optional={
        "timestamp": maybe(st.sampled_from(["1700000000", "0", "-1", "9" * 30, "x"]) | any_text),
        "text": maybe(st.fixed_dictionaries({}, optional={"body": maybe(any_text)})),
        "image": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "id": maybe(any_text),
                    "mime_type": maybe(any_text),
                    "sha256": maybe(any_text),
                    "caption": maybe(any_text),
                },
            )
        ),
        "location": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "latitude": json_values,
                    "longitude": json_values,
                    "name": maybe(any_text),
                    "address": maybe(any_text),
                },
            )
        ),
        "interactive": json_values,
        "button": maybe(st.fixed_dictionaries({}, optional={"text": json_values})),
        "context": maybe(st.fixed_dictionaries({}, optional={"id": json_values})),
    },
)
meta_status = st.fixed_dictionaries(
    {},
    optional={
        "id": maybe(any_text),
        "status": maybe(st.sampled_from(["sent", "delivered", "read", "failed"]) | any_text),
        "errors": json_values,
    },
)
meta_value = st.fixed_dictionaries(
    {},
    optional={
        "messaging_product": maybe(st.just("whatsapp")),
        "metadata": maybe(
            st.fixed_dictionaries(
                {}, optional={"display_phone_number": json_values, "phone_number_id": json_values}
            )
        ),
        "contacts": maybe(
            st.lists(
                maybe(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "wa_id": maybe(digits),
                            "profile": maybe(st.fixed_dictionaries({"name": maybe(any_text)})),
                        },
                    )
                ),
                max_size=2,
            )
        ),
        "messages": maybe(st.lists(maybe(meta_message), max_size=3)),
        "statuses": maybe(st.lists(maybe(meta_status), max_size=2)),
    },
)
meta_payload = st.fixed_dictionaries(
    {
        "object": maybe(st.just("whatsapp_business_account")),
        "entry": maybe(
            st.lists(
                maybe(
                    st.fixed_dictionaries(
                        {"id": json_values},
                        optional={
                            "changes": maybe(
                                st.lists(
                                    maybe(
                                        st.fixed_dictionaries(
                                            {
                                                "field": maybe(st.just("messages")),
                                                "value": maybe(meta_value),
                                            }
                                        )
                                    ),
                                    max_size=2,
                                )
                            )
                        },
                    )
                ),
                max_size=2,
            )
        ),
    }
)
meta_body = st.one_of(
    meta_payload.map(lambda p: json.dumps(p).encode()),
    meta_payload.map(lambda p: json.dumps(p).encode()),
    meta_payload.map(lambda p: json.dumps(p).encode()),
    json_values.map(lambda p: json.dumps(p).encode()),
    st.binary(max_size=200),
)


def test_the_meta_webhook_answers_every_signed_body_without_a_5xx(gw: Gateway) -> None:
    async def post(body: bytes) -> tuple[int, str]:
        digest = hmac.new(META_SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"}
        async with gw.client.post(
            "/webhooks/whatsapp", data=io.BytesIO(body), headers=headers
        ) as r:
            return r.status, await r.text()

    @settings(FUZZ_SETTINGS, max_examples=INPUTS_PER_ENTRY_POINT // BATCH + 5)
    @given(st.lists(meta_body, min_size=BATCH, max_size=BATCH))
    def batch(bodies: list[bytes]) -> None:
        answers = gw.run(gather_limited([lambda b=b: post(b) for b in bodies]))
        gw.count("meta", len(bodies))
        for body, (status, text) in zip(bodies, answers, strict=True):
            assert status < 500, (status, text[:300], body[:500])
            assert status != 403, (text[:300], body[:300])

    batch()
    assert gw.sent["meta"] >= INPUTS_PER_ENTRY_POINT
    no_errors_logged(gw)
