"""The id/en guess that picks the reply template."""

from __future__ import annotations

import pytest

from normalizer.language import guess_language
from tests.normalizer.corpus import Sample, load_topic_corpus

INDONESIAN = [
    "Jalan di depan rumah saya rusak parah, mohon segera diperbaiki.",
    "tolong dong",
    "Terima kasih",
    "makasih min",
    "Selamat pagi pak, lampu jalan mati",
    "yg ini blm diangkut sampahnya",
    "Udah 3 hari air PDAM gak ngalir",
    "Kenapa laporan saya belum ada jawaban?",
    "knp blm ada tindak lanjut?",
    "Sampah numpuk di TPS, bau banget",
    "Ada pungli di kelurahan, saya dimintai uang 100rb",
    "Mohon maaf, mau tanya status laporan saya",
    "Jl. Pajajaran no 12 banjir lagi, tidak bisa lewat",
    "Banjir lagi nih, gimana sih",
    "gak ada yg peduli",
]
ENGLISH = [
    "The road in front of my house is badly damaged, please fix it.",
    "Thank you",
    "thanks!",
    "Please help",
    "Hello, the street light is out",
    "What is the status of my complaint?",
    "Why has nobody answered my report yet?",
    "There's a pothole near Jalan Semeru",
    "Garbage has not been collected for a week",
    "I was asked to pay a bribe at the sub-district office",
    "flooding again, can't get through",
    "Any update?",
    "The drains on Jalan Pajajaran are blocked and it floods every time it rains",
    "Who should I contact about this?",
    "isn't anyone going to fix this?",
]


@pytest.mark.parametrize("text", INDONESIAN)
def test_indonesian(text: str) -> None:
    assert guess_language(text) == "id"
    assert guess_language(text, default="en") == "id"


@pytest.mark.parametrize("text", ENGLISH)
def test_english(text: str) -> None:
    assert guess_language(text) == "en"
    assert guess_language(text, default="id") == "en"


@pytest.mark.parametrize("text", ["", "BGR-2026-004217-3", "123456", "Ok", "STOP", "!!!"])
def test_no_evidence_gives_the_default(text: str) -> None:
    assert guess_language(text) == "id"
    assert guess_language(text, default="en") == "en"


def test_indonesian_street_names_do_not_outweigh_an_english_sentence() -> None:
    text = "The street lights on Jalan Raya Tajur dekat Jalan Pahlawan are broken"
    assert guess_language(text) == "en"


@pytest.mark.parametrize("sample", load_topic_corpus(), ids=lambda s: s.text[:40])
def test_topic_corpus_language(sample: Sample) -> None:
    assert guess_language(sample.text) == sample.language


def test_topic_corpus_is_about_a_third_english() -> None:
    languages = [s.language for s in load_topic_corpus()]
    assert 0.25 <= languages.count("en") / len(languages) <= 0.45
