"""Rate-limit rules: `NAME=COUNT/SECONDS`, comma-separated."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_LIMITS = "ip=120/60,web=10/60,api=30/60,sms=20/60,whatsapp=20/60,email=10/60"


@dataclass(frozen=True)
class Limit:
    count: int
    seconds: int


def parse_limits(spec: str, key: str = "ADUAN_RATE_LIMITS") -> dict[str, Limit]:
    """`ip=120/60,sms=20/60`: 120 requests a minute per IP, 20 SMS a minute per sender.

    `ip` applies per client address to every intake route; a channel name applies per
    sender on that channel. `NAME=0/60` turns that limit off.
    """
    from config.settings import SettingsError

    limits: dict[str, Limit] = {}
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        name, _, rule = part.partition("=")
        count, _, seconds = rule.partition("/")
        if not (name.strip() and count.isdigit() and seconds.isdigit() and int(seconds) > 0):
            raise SettingsError(
                f"Setting '{key}': {part!r} is not NAME=COUNT/SECONDS (for example sms=20/60)."
            )
        limits[name.strip()] = Limit(int(count), int(seconds))
    return limits
