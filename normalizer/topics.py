"""Topic classification from the city's keyword taxonomy (Indonesian and English).

A keyword is a word or phrase matched on whole words after case and accent
folding; a trailing `*` makes it a prefix (`banjir*` matches `banjiran`). A
phrase of several words counts double: it is stronger evidence than one word.
"""

from __future__ import annotations

import functools
import re
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from normalizer.text import words

FALLBACK_TOPIC = "lainnya"
WORDS_REMEMBERED = 16_384  # of the keyword index, per taxonomy: a few MB at most


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

    @cached_property
    def index(self) -> _Index:
        """Every topic's keywords by the words that can match them, built once."""
        return _Index(self)

    def get(self, code: str) -> Topic | None:
        return next((t for t in self.topics if t.code == code), None)

    @cached_property
    def priorities(self) -> dict[str, int]:
        return {t.code: t.priority for t in self.topics}

    @cached_property
    def codes(self) -> frozenset[str]:
        return frozenset(t.code for t in self.topics)

    @cached_property
    def confidential_codes(self) -> frozenset[str]:
        return frozenset(t.code for t in self.topics if t.confidential)

    def is_confidential(self, code: str) -> bool:
        return code in self.confidential_codes

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


# (taxonomy order, topic code, keyword, weight): one keyword of one topic.
_Entry = tuple[int, str, str, int]


class _Index:
    """The taxonomy's keywords looked up from a text's words, not tested one by one: a
    word and a prefix are found in a dict, a phrase is tried only when the text has its
    first word. Matches are put back in taxonomy order, so `classify` answers exactly as
    testing every keyword in turn would (the same scores, keywords and ties)."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.words: dict[str, list[_Entry]] = {}
        self.prefixes: dict[str, list[_Entry]] = {}
        self.by_first_word: dict[str, list[tuple[_Entry, Callable[[_Text], bool]]]] = {}
        order = 0
        for topic in taxonomy.topics:
            for keyword, test, weight in taxonomy.matchers(topic):
                entry = (order, topic.code, keyword, weight)
                order += 1
                parts = words(keyword.rstrip("*"))
                if len(parts) == 1:
                    found = self.prefixes if keyword.endswith("*") else self.words
                    found.setdefault(parts[0], []).append(entry)
                else:  # a phrase's first word is a whole word of the text
                    self.by_first_word.setdefault(parts[0], []).append((entry, test))
        self.stem_lengths = sorted({len(stem) for stem in self.prefixes})
        # A city's complaints use a few thousand words over and over: what each one
        # matches is looked up once, not a dict per stem length for every word again.
        self.of_word = functools.lru_cache(maxsize=WORDS_REMEMBERED)(self._of_word)

    def _of_word(
        self, token: str
    ) -> tuple[tuple[_Entry, ...], tuple[tuple[_Entry, Callable[[_Text], bool]], ...]]:
        """The keywords `token` matches by itself (as a word or under a stem), and the
        phrases that start with it, to be tested against the whole text."""
        found = list(self.words.get(token, ()))
        for length in self.stem_lengths:
            if length > len(token):
                break
            found.extend(self.prefixes.get(token[:length], ()))
        return tuple(found), tuple(self.by_first_word.get(token, ()))

    def matches(self, text: _Text) -> list[_Entry]:
        found: set[_Entry] = set()
        for token in text.tokens:
            entries, phrases = self.of_word(token)
            found.update(entries)
            for entry, test in phrases:
                if test(text):
                    found.add(entry)
        return sorted(found)


class _Text:
    """Folded words of one text, indexed once for every keyword test."""

    def __init__(self, text: str) -> None:
        tokens = words(text)
        self.joined = " ".join(tokens)
        self.padded = f" {self.joined} "
        self.tokens = frozenset(tokens)

    @cached_property
    def sorted(self) -> list[str]:  # only a prefix tested on its own needs it
        return sorted(self.tokens)

    def has_prefix(self, stem: str) -> bool:
        index = bisect_left(self.sorted, stem)
        return index < len(self.sorted) and self.sorted[index].startswith(stem)


def classify(text: str, taxonomy: Taxonomy) -> Classification:
    scores: dict[str, int] = {}
    matched: dict[str, list[str]] = {}
    for _, code, keyword, weight in taxonomy.index.matches(_Text(text)):
        scores[code] = scores.get(code, 0) + weight
        matched.setdefault(code, []).append(keyword)
    if not scores:
        return Classification(taxonomy.fallback, (), {})
    order = taxonomy.priorities
    best = max(scores, key=lambda code: (scores[code], order.get(code, 0)))
    return Classification(best, tuple(matched[best]), scores)


def mentions_confidential_marker(text: str, taxonomy: Taxonomy) -> bool:
    tokens = set(words(text))
    return any(marker in tokens for marker in taxonomy.confidential_markers)
