"""Topic classification from the city's keyword taxonomy (Indonesian and English).

A keyword is a word or phrase matched on whole words after case and accent
folding; a trailing `*` makes it a prefix (`banjir*` matches `banjiran`). A
phrase of several words counts double: it is stronger evidence than one word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

from normalizer.text import words

FALLBACK_TOPIC = "lainnya"


@dataclass(frozen=True)
class Topic:
    code: str
    names: dict[str, str]
    keywords: tuple[str, ...]
    confidential: bool = False
    priority: int = 0


@dataclass(frozen=True)
class Taxonomy:
    topics: tuple[Topic, ...]
    confidential_markers: tuple[str, ...] = ("rahasia", "confidential")
    fallback: str = FALLBACK_TOPIC
    _patterns: dict[str, list[tuple[str, re.Pattern[str], int]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def get(self, code: str) -> Topic | None:
        return next((t for t in self.topics if t.code == code), None)

    @cached_property
    def codes(self) -> frozenset[str]:
        return frozenset(t.code for t in self.topics)

    def is_confidential(self, code: str) -> bool:
        topic = self.get(code)
        return bool(topic and topic.confidential)

    def patterns(self, topic: Topic) -> list[tuple[str, re.Pattern[str], int]]:
        cached = self._patterns.get(topic.code)
        if cached is None:
            cached = [(k, _compile(k), 2 if " " in k.strip() else 1) for k in topic.keywords]
            self._patterns[topic.code] = cached
        return cached


def _compile(keyword: str) -> re.Pattern[str]:
    prefix = keyword.endswith("*")
    parts = words(keyword.rstrip("*"))
    body = r" ".join(re.escape(p) for p in parts)
    tail = r"\w*" if prefix else ""
    return re.compile(rf"(?<!\w){body}{tail}(?!\w)")


@dataclass(frozen=True)
class Classification:
    topic: str
    keywords: tuple[str, ...]
    scores: dict[str, int]


def classify(text: str, taxonomy: Taxonomy) -> Classification:
    folded = " ".join(words(text))
    scores: dict[str, int] = {}
    matched: dict[str, list[str]] = {}
    for topic in taxonomy.topics:
        for keyword, pattern, weight in taxonomy.patterns(topic):
            if pattern.search(folded):
                scores[topic.code] = scores.get(topic.code, 0) + weight
                matched.setdefault(topic.code, []).append(keyword)
    if not scores:
        return Classification(taxonomy.fallback, (), {})
    order = {t.code: t.priority for t in taxonomy.topics}
    best = max(scores, key=lambda code: (scores[code], order.get(code, 0)))
    return Classification(best, tuple(matched[best]), scores)


def mentions_confidential_marker(text: str, taxonomy: Taxonomy) -> bool:
    tokens = set(words(text))
    return any(marker in tokens for marker in taxonomy.confidential_markers)
