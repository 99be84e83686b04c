"""The normaliser on 10,000 generated InboundMessages: a Complaint or InvalidContact."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.base import Attachment, InboundMessage, Location
from config.settings import load_settings
from gateway.app import build_services
from normalizer import InvalidContact, Rules, normalize
from tests.conftest import settings_env
from tests.fuzz.conftest import FUZZ_SETTINGS, INPUTS_PER_ENTRY_POINT, any_text, odd_text

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
BATCH = 20
CHANNELS = ["sms", "whatsapp", "email", "web", "api"]
sender = odd_text | st.sampled_from(
    ["+6281234567890", "081234567890", "whatsapp:+6281234567890", "budi@Example.ORG", "<>",
     "Budi <budi@example.org>", "tel:+1", "+", "0", "a@b", "\u0660\u0661\u0662"]
)  # fmt: skip
optional_text = st.none() | odd_text
messages = st.builds(
    InboundMessage,
    channel=st.sampled_from(CHANNELS),
    provider=st.sampled_from(["twilio", "meta", "smtp", "web"]),
    provider_message_id=odd_text,
    sender=sender,
    text=any_text,
    received_at=st.datetimes(timezones=st.just(UTC)),
    alt_sender=st.none() | sender,
    sender_name=optional_text,
    recipient=optional_text,
    subject=st.none() | any_text,
    attachments=st.lists(
        st.builds(Attachment, content_type=odd_text, size=st.none() | st.integers(0)),
        max_size=2,
    ).map(tuple),
    location=st.none()
    | st.builds(
        Location,
        lat=st.none() | st.floats(-90, 90),
        lon=st.none() | st.floats(-180, 180),
        address=optional_text,
        label=optional_text,
    ),
    reply_to=st.lists(odd_text, max_size=2).map(tuple),
    topic_hint=st.none() | st.sampled_from(["infrastruktur", "pungli", "korupsi"]) | odd_text,
    language_hint=st.none() | st.sampled_from(["id", "en"]) | odd_text,
    raw=st.fixed_dictionaries(
        {}, optional={"content_type": st.sampled_from(["text/html", "text/plain"]) | odd_text}
    ),
)


@pytest.fixture(scope="module")
def rules(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Rules:
    tmp = tmp_path_factory.mktemp("rules")
    settings_ = load_settings(settings_env(tmp, redis_url, f"sqlite:///{tmp / 'x.sqlite3'}"))
    services = build_services(settings_, redis_url)
    services.engine.dispose()
    return services.rules


def test_the_normalizer_takes_every_generated_message(rules: Rules) -> None:
    seen = 0

    @settings(FUZZ_SETTINGS, max_examples=INPUTS_PER_ENTRY_POINT // BATCH + 5)
    @given(st.lists(messages, min_size=BATCH, max_size=BATCH))
    def batch(inbound: list[InboundMessage]) -> None:
        nonlocal seen
        for message in inbound:
            try:
                complaint = normalize(message, rules)
            except InvalidContact:
                continue  # the documented refusal: the gateway answers it with a 400
            assert complaint.channel == message.channel
            assert isinstance(complaint.received_at, datetime)
            complaint.to_dict()  # what the queue carries must serialise
        seen += len(inbound)

    batch()
    assert seen >= INPUTS_PER_ENTRY_POINT
