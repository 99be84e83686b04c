"""The data a city edits: topic taxonomy and reply templates, loaded from TOML."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from config.settings import SettingsError
from normalizer.topics import Taxonomy, Topic


def _read(path: Path | None, default: str) -> dict[str, Any]:
    if path is None:
        return tomllib.loads(resources.files("config").joinpath(default).read_text("utf-8"))
    try:
        return tomllib.loads(path.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"Cannot read {path}: {exc}") from None


@lru_cache(maxsize=8)
def load_taxonomy(path: Path | None = None) -> Taxonomy:
    data = _read(path, "topics.toml")
    topics = []
    for entry in data.get("topic", []):
        try:
            topics.append(
                Topic(
                    code=str(entry["code"]),
                    names={"id": str(entry["name_id"]), "en": str(entry["name_en"])},
                    keywords=tuple(str(k) for k in entry.get("keywords", [])),
                    confidential=bool(entry.get("confidential", False)),
                    priority=int(entry.get("priority", 0)),
                )
            )
        except KeyError as exc:
            raise SettingsError(f"Topic {entry!r} lacks {exc}.") from None
    fallback = str(data.get("fallback", "lainnya"))
    if fallback not in {t.code for t in topics}:
        raise SettingsError(f"Topic taxonomy: fallback topic '{fallback}' is not defined.")
    return Taxonomy(
        topics=tuple(topics),
        confidential_markers=tuple(str(m).casefold() for m in data.get("confidential_markers", [])),
        fallback=fallback,
    )


@dataclass(frozen=True)
class Replies:
    templates: dict[str, dict[str, str]]
    status_names: dict[str, dict[str, str]]

    def render(self, language: str, name: str, **values: str) -> str:
        table = self.templates.get(language) or self.templates["id"]
        return table[name].format(**values)

    def status_name(self, language: str, status: str) -> str:
        return (self.status_names.get(language) or self.status_names["id"]).get(status, status)


@lru_cache(maxsize=8)
def load_replies(path: Path | None = None) -> Replies:
    data = _read(path, "replies.toml")
    names = data.pop("status_names", {})
    return Replies(templates=data, status_names=names)
