"""Topic classification from the city's keyword taxonomy (Indonesian and English).

A keyword is a word or phrase matched on whole words after case and accent
folding; a trailing `*` makes it a prefix (`banjir*` matches `banjiran`). A
phrase of several words counts double: it is stronger evidence than one word.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable
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
    _matchers: dict[str, list[tuple[str, Callable[[_Text], bool], int]]] = field(
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

    def matchers(self, topic: Topic) -> list[tuple[str, Callable[[_Text], bool], int]]:
        cached = self._matchers.get(topic.code)
        if cached is None:
            cached = [(k, _matcher(k, p), w) for k, p, w in self.patterns(topic)]
            self._matchers[topic.code] = cached
        return cached

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


def _matcher(keyword: str, pattern: re.Pattern[str]) -> Callable[[_Text], bool]:
    """The cheapest test equivalent to `pattern` on space-joined folded words."""
    prefix = keyword.endswith("*")
    parts = words(keyword.rstrip("*"))
    if len(parts) == 1 and not prefix:
        word = parts[0]
        return lambda text: word in text.tokens
    if len(parts) == 1:
        stem = parts[0]
        return lambda text: text.has_prefix(stem)
    if not prefix:
        phrase = f" {' '.join(parts)} "
        return lambda text: phrase in text.padded
    return lambda text: pattern.search(text.joined) is not None


class _Text:
    """Folded words of one text, indexed once for every keyword test."""

    def __init__(self, text: str) -> None:
        tokens = words(text)
        self.joined = " ".join(tokens)
        self.padded = f" {self.joined} "
        self.tokens = frozenset(tokens)
        self.sorted = sorted(self.tokens)

    def has_prefix(self, stem: str) -> bool:
        index = bisect_left(self.sorted, stem)
        return index < len(self.sorted) and self.sorted[index].startswith(stem)


def classify(text: str, taxonomy: Taxonomy) -> Classification:
    indexed = _Text(text)
    scores: dict[str, int] = {}
    matched: dict[str, list[str]] = {}
    for topic in taxonomy.topics:
        for keyword, test, weight in taxonomy.matchers(topic):
            if test(indexed):
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
