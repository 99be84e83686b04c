"""Precision and recall of incident linking on a labelled set of complaints.

    .venv/bin/python benchmarks/incidents/evaluate.py             # figures, both sets
    .venv/bin/python benchmarks/incidents/evaluate.py -v          # and every wrong pair
    .venv/bin/python benchmarks/incidents/evaluate.py --classify  # topics from the classifier
    .venv/bin/python benchmarks/incidents/evaluate.py some.jsonl  # another labelled set

The complaints are linked the way the store links them: in the order received, each new
complaint joins the best-matching earlier incident that `same_incident` accepts for one of
its reports (best by `similarity`) and that none of its reports `contradicts`, or starts an
incident of its own. Every pair of
complaints is then a "same incident" decision, right or wrong against the labels:
precision = right "same" pairs / all "same" pairs, recall = right "same" pairs / all pairs
that the labels put together.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import combinations
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from normalizer.similarity import (  # noqa: E402
    DEFAULT_RULES,
    IncidentCandidate,
    LinkRules,
    analyse,
    choose_incident,
    distance_m,
    place_evidence,
    problem_overlap,
    same_incident,
    text_similarity,
)

DATASET = Path(__file__).with_name("complaints.jsonl")
HOLDOUT = Path(__file__).with_name("holdout.jsonl")


@dataclass(frozen=True)
class Item:
    id: str
    incident: str
    candidate: IncidentCandidate
    note: str = ""


@dataclass
class Result:
    items: list[Item]
    assigned: dict[str, int]  # complaint id → predicted incident number
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    wrong_same: list[tuple[Item, Item]] = field(default_factory=list)
    missed: list[tuple[Item, Item]] = field(default_factory=list)

    @property
    def precision(self) -> float:
        predicted = self.true_positives + self.false_positives
        return self.true_positives / predicted if predicted else 1.0

    @property
    def recall(self) -> float:
        actual = self.true_positives + self.false_negatives
        return self.true_positives / actual if actual else 1.0


def load(path: Path = DATASET, *, classify_topics: bool = False) -> list[Item]:
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    classify_topic = _classifier() if classify_topics else None
    items = []
    for row in rows:
        values: dict[str, Any] = dict(row)
        if classify_topic is not None:
            values["topic"] = classify_topic(row["text"])
        items.append(
            Item(
                id=row["id"],
                incident=row["incident"],
                candidate=IncidentCandidate.from_values(values),
                note=row.get("note", ""),
            )
        )
    return sorted(items, key=lambda i: (_time(i.candidate.received_at), i.id))


def _time(value: datetime | None) -> float:
    return value.timestamp() if value else 0.0


def _classifier() -> Any:
    from config.data import load_taxonomy
    from normalizer.topics import classify

    taxonomy = load_taxonomy()
    return lambda text: classify(text, taxonomy).topic


def link(items: Sequence[Item], rules: LinkRules = DEFAULT_RULES) -> dict[str, int]:
    """Each complaint in order joins the best earlier incident that accepts it, or a new one."""
    incidents: list[list[Item]] = []
    assigned: dict[str, int] = {}
    for item in items:
        groups = {n: [m.candidate for m in members] for n, members in enumerate(incidents)}
        best = choose_incident(item.candidate, groups, rules)
        if best is None:
            incidents.append([item])
            assigned[item.id] = len(incidents) - 1
        else:
            incidents[best[1]].append(item)
            assigned[item.id] = best[1]
    return assigned


def evaluate(
    path: Path = DATASET, rules: LinkRules = DEFAULT_RULES, *, classify_topics: bool = False
) -> Result:
    items = load(path, classify_topics=classify_topics)
    result = Result(items=items, assigned=link(items, rules))
    for a, b in combinations(items, 2):
        same = a.incident == b.incident
        linked = result.assigned[a.id] == result.assigned[b.id]
        if same and linked:
            result.true_positives += 1
        elif linked:
            result.false_positives += 1
            result.wrong_same.append((a, b))
        elif same:
            result.false_negatives += 1
            result.missed.append((a, b))
    return result


def explain(a: Item, b: Item, rules: LinkRules = DEFAULT_RULES) -> str:
    ca, cb = a.candidate, b.candidate
    ta, tb = analyse(ca.text, ca.address), analyse(cb.text, cb.address)
    places = place_evidence(ta.places, tb.places)
    parts = [
        f"overlap={problem_overlap(ta, tb):.2f}",
        f"text={text_similarity(ta, tb):.2f}",
        f"places={'match' if places.match else '-'}"
        + (" CONFLICT" if places.conflict else "")
        + (" spot-conflict" if places.spot_conflict else ""),
        f"same_incident={same_incident(ca, cb, rules)}",
    ]
    if ca.located and cb.located:
        assert ca.lat is not None and ca.lon is not None and cb.lat is not None
        assert cb.lon is not None
        parts.append(f"{distance_m(ca.lat, ca.lon, cb.lat, cb.lon):.0f} m")
    if ca.received_at and cb.received_at:
        parts.append(f"{abs((ca.received_at - cb.received_at).total_seconds()) / 86400:.1f} d")
    if ca.topic != cb.topic:
        parts.append(f"topics {ca.topic}/{cb.topic}")
    lines = [
        "  " + " · ".join(parts),
        f"    {a.id} [{a.incident}] {ca.text}",
        f"      problem={list(ta.problem)} places={_places(ta.places)}",
        f"    {b.id} [{b.incident}] {cb.text}",
        f"      problem={list(tb.problem)} places={_places(tb.places)}",
    ]
    return "\n".join(lines)


def _places(places: Any) -> str:
    shown = sorted(f"{p.kind}:{p.head + '/' if p.head else ''}{' '.join(p.name)}" for p in places)
    return "{" + ", ".join(shown) + "}"


def summary(result: Result, label: str = "") -> str:
    incidents = {i.incident for i in result.items}
    predicted = set(result.assigned.values())
    tp, fp, fn = result.true_positives, result.false_positives, result.false_negatives
    return (
        f"{label}{len(result.items)} complaints, {len(incidents)} labelled incidents, "
        f"{len(predicted)} predicted\n"
        f"  same-incident pairs: labelled {tp + fn}, predicted {tp + fp}, right {tp}, "
        f"wrong {fp}, missed {fn}\n"
        f"  precision {result.precision:.3f}  recall {result.recall:.3f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "paths", nargs="*", type=Path, help="labelled sets (default: the set and the held-out set)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show every wrong pair")
    parser.add_argument(
        "--classify",
        action="store_true",
        help="take each complaint's topic from the normalizer's classifier, not the label",
    )
    parser.add_argument("--max-distance", type=float, default=DEFAULT_RULES.max_distance_m)
    parser.add_argument("--window-days", type=float, default=DEFAULT_RULES.window_days)
    args = parser.parse_args(argv)
    rules = replace(
        DEFAULT_RULES, max_distance_m=args.max_distance, window_days=args.window_days
    )
    for number, path in enumerate(args.paths or [DATASET, HOLDOUT]):
        result = evaluate(path, rules, classify_topics=args.classify)
        label = f"{path.name}{' (topics from the classifier)' if args.classify else ''}: "
        if number:
            print()
        if path == HOLDOUT:
            print("held out: written after the rules were tuned (see README.md)")
        print(summary(result, label))
        if args.verbose:
            print(f"\nwrongly linked ({len(result.wrong_same)} pairs):")
            for a, b in result.wrong_same:
                print(explain(a, b, rules))
            print(f"\nmissed ({len(result.missed)} pairs):")
            for a, b in result.missed:
                print(explain(a, b, rules))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
