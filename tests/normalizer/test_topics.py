"""Topic classification against a corpus of realistic complaints, and confidentiality."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.data import load_taxonomy
from normalizer import Rules, normalize
from normalizer.text import words
from normalizer.topics import (
    Classification,
    Taxonomy,
    Topic,
    classify,
    mentions_confidential_marker,
)
from tests.normalizer.corpus import load_topic_corpus, message

CORPUS = [(s.topic, s.text) for s in load_topic_corpus()]
CONFIDENTIAL_TOPICS = ("pungli", "korupsi", "penyalahgunaan_wewenang")


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


@pytest.fixture(scope="module")
def rules(taxonomy: Taxonomy) -> Rules:
    return Rules(taxonomy=taxonomy)


def test_corpus_covers_every_topic_at_least_four_times(taxonomy: Taxonomy) -> None:
    counts = Counter(topic for topic, _ in CORPUS)
    assert set(counts) == taxonomy.codes
    assert min(counts.values()) >= 4
    assert len(CORPUS) >= 60


@pytest.mark.parametrize(
    ("expected", "text"), CORPUS, ids=[f"{t}-{i}" for i, (t, _) in enumerate(CORPUS)]
)
def test_classify_corpus(taxonomy: Taxonomy, expected: str, text: str) -> None:
    result = classify(text, taxonomy)
    assert result.topic == expected, result.scores
    if expected == taxonomy.fallback:
        assert result.keywords == ()
    else:
        assert result.keywords, "a topic other than the fallback names the keywords that matched"


def test_taxonomy_marks_the_integrity_topics_confidential(taxonomy: Taxonomy) -> None:
    assert {t.code for t in taxonomy.topics if t.confidential} == set(CONFIDENTIAL_TOPICS)


@pytest.mark.parametrize(
    ("expected", "text"), [(t, x) for t, x in CORPUS if t in CONFIDENTIAL_TOPICS]
)
def test_confidential_topics_are_confidential_after_normalize(
    rules: Rules, expected: str, text: str
) -> None:
    complaint = normalize(message(text), rules)
    assert complaint.topic == expected
    assert complaint.confidential is True


@pytest.mark.parametrize(
    ("expected", "text"), [(t, x) for t, x in CORPUS if t not in CONFIDENTIAL_TOPICS]
)
def test_other_topics_are_not_confidential_unless_asked(
    rules: Rules, expected: str, text: str
) -> None:
    plain = normalize(message(text), rules)
    assert plain.topic == expected
    assert plain.confidential is False
    secret = normalize(message(f"RAHASIA. {text}"), rules)
    assert secret.topic == expected
    assert secret.confidential is True


@pytest.mark.parametrize(
    "text",
    [
        "rahasia: sampah di TPS Bubulak belum diangkut",
        "Lampu jalan mati. Mohon identitas saya dirahasiakan.",
        "Tolong rahasiakan nama saya, selokan di depan rumah mampet",
        "Please keep this confidential: the streetlight on Jalan Dadali is out",
        "Saya lapor secara anonim, ada monyet liar di kampung kami",
    ],
)
def test_confidential_markers(rules: Rules, text: str) -> None:
    assert mentions_confidential_marker(text, rules.taxonomy)
    assert normalize(message(text), rules).confidential is True


def test_marker_in_the_email_subject_counts(rules: Rules) -> None:
    msg = message(
        "Sampah menumpuk di TPS Pasar Anyar.",
        channel="email",
        provider="smtp",
        sender="warga@example.com",
        subject="RAHASIA - laporan",
    )
    assert normalize(msg, rules).confidential is True


def test_marker_is_a_whole_word(rules: Rules) -> None:
    # "kerahasiaan" (confidentiality as a subject) is not a request to hide the reporter.
    text = "Sampah di TPS dekat kantor kerahasiaan negara belum diangkut"
    assert not mentions_confidential_marker(text, rules.taxonomy)
    assert normalize(message(text), rules).confidential is False


def test_topic_hint_of_a_confidential_topic_makes_the_report_confidential(rules: Rules) -> None:
    msg = message(
        "Saya mau lapor soal kepala dinas",
        channel="web",
        provider="web",
        sender="",
        topic_hint="korupsi",
    )
    complaint = normalize(msg, rules)
    assert complaint.topic == "korupsi"
    assert complaint.confidential is True


def test_unknown_topic_hint_is_ignored(rules: Rules) -> None:
    msg = message("Lampu jalan di Jl. Dadali mati", topic_hint="ufo")
    assert normalize(msg, rules).topic == "penerangan"


def test_text_without_keywords_falls_back(taxonomy: Taxonomy) -> None:
    result = classify("Selamat pagi, apa kabar?", taxonomy)
    assert (result.topic, result.keywords, result.scores) == ("lainnya", (), {})


def test_matching_is_on_whole_words_with_prefix_and_accent_folding() -> None:
    taxonomy = Taxonomy(
        topics=(
            Topic("banjir", {"id": "Banjir", "en": "Flood"}, ("banjir*",)),
            Topic("cafe", {"id": "Kafe", "en": "Cafe"}, ("café",)),
            Topic("got", {"id": "Got", "en": "Gutter"}, ("got",)),
            Topic("lainnya", {"id": "Lainnya", "en": "Other"}, ()),
        )
    )
    assert classify("BANJIRAN lagi", taxonomy).topic == "banjir"
    assert classify("kebanjiran", taxonomy).topic == "lainnya"  # no prefix before the keyword
    assert classify("Cafe di Sempur berisik", taxonomy).topic == "cafe"
    assert classify("gotong royong", taxonomy).topic == "lainnya"  # "got" is not "gotong"


def test_phrase_counts_double_and_priority_breaks_ties() -> None:
    taxonomy = Taxonomy(
        topics=(
            Topic("a", {"id": "A", "en": "A"}, ("lampu", "mati")),
            Topic("b", {"id": "B", "en": "B"}, ("lampu jalan",), priority=0),
            Topic("c", {"id": "C", "en": "C"}, ("gelap",), priority=5),
            Topic("d", {"id": "D", "en": "D"}, ("malam",)),
            Topic("lainnya", {"id": "Lainnya", "en": "Other"}, ()),
        )
    )
    result = classify("lampu jalan mati", taxonomy)
    assert result.scores == {"a": 2, "b": 2}
    result = classify("lampu jalan", taxonomy)
    assert result.topic == "b"  # the phrase (2) beats the single word (1)
    result = classify("gelap malam", taxonomy)
    assert result.topic == "c"  # 1 against 1: the higher priority wins
    assert result.keywords == ("gelap",)


def test_hard_cases_pick_the_integrity_topic_over_the_place(taxonomy: Taxonomy) -> None:
    # A pungli report that happens to name a damaged road and a service office.
    pungli = classify(
        "Jalan berlubang di depan kantor kelurahan gak pernah dibenerin, tapi tiap ngurus "
        "surat di situ kami dimintai uang 50rb tanpa kwitansi",
        taxonomy,
    )
    assert pungli.topic == "pungli"
    assert {"dimintai uang", "tanpa kwitansi"} <= set(pungli.keywords)
    assert pungli.scores["infrastruktur"] >= 1
    # A flood that names the street it happened in is drainage, not roads.
    flood = classify("Jl. Raya Pajajaran banjir lagi, jalan jadi kayak sungai", taxonomy)
    assert flood.topic == "drainase"


def _by_every_keyword(text: str, taxonomy: Taxonomy) -> Classification:
    """Every keyword's own pattern tried on the text, in taxonomy order: what the index
    must answer exactly."""
    joined = " ".join(words(text))
    scores: dict[str, int] = {}
    matched: dict[str, list[str]] = {}
    for topic in taxonomy.topics:
        for keyword, pattern, weight in taxonomy.patterns(topic):
            if pattern.search(joined):
                scores[topic.code] = scores.get(topic.code, 0) + weight
                matched.setdefault(topic.code, []).append(keyword)
    if not scores:
        return Classification(taxonomy.fallback, (), {})
    best = max(scores, key=lambda code: (scores[code], taxonomy.priorities.get(code, 0)))
    return Classification(best, tuple(matched[best]), scores)


def _vocabulary(taxonomy: Taxonomy) -> list[str]:
    """The taxonomy's own phrases and words, its stems with endings, and words near them."""
    found = {"dan", "di", "yang", "tidak", "jalan", "x", "kebanjiran", "lampunya"}
    for topic in taxonomy.topics:
        for keyword in topic.keywords:
            found.add(keyword.rstrip("*"))
            for word in words(keyword.rstrip("*")):
                found.update({word, word + "an", word[:-1], "ke" + word})
    return sorted(found)


VOCABULARY = _vocabulary(load_taxonomy())


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(VOCABULARY), min_size=0, max_size=14))
def test_the_keyword_index_answers_as_every_keyword_tried_in_turn(
    taxonomy: Taxonomy, chosen: list[str]
) -> None:
    # Examples share one index and what it remembers of each word: a word is looked up
    # again in other texts, with other neighbours for its phrases.
    text = " ".join(chosen)
    assert classify(text, taxonomy) == _by_every_keyword(text, taxonomy)
