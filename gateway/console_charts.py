"""Charts drawn by the server as inline SVG: no script, no third party, nothing to fetch.

Colours are SVG presentation attributes, not `style`, so the console's CSP holds.
Every label goes through markupsafe's escaping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from markupsafe import Markup

CHANNEL_COLOURS = {
    "sms": "#1f77b4",
    "whatsapp": "#2ca02c",
    "email": "#ff7f0e",
    "web": "#9467bd",
    "api": "#8c564b",
}
FALLBACK_COLOUR = "#7f7f7f"


def _nice_max(value: int) -> int:
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if value <= step * 4:
            return step * 4
    return value


def stacked_days(
    days: Sequence[date], series: Mapping[str, Sequence[int]], title: str, empty: str
) -> Markup:
    """Cases per day, one bar a day, stacked by channel, with a legend."""
    width, height, left, bottom, top = 720, 260, 40, 40, 30
    plot_w, plot_h = width - left - 10, height - bottom - top
    totals = [sum(values[i] for values in series.values()) for i in range(len(days))]
    top_value = _nice_max(max(totals, default=0) or 1)
    slot = plot_w / max(len(days), 1)
    bar = slot * 0.7
    parts = [
        Markup(
            '<svg class="chart" role="img" aria-label="{}" viewBox="0 0 {} {}" '
            'xmlns="http://www.w3.org/2000/svg">'
        ).format(title, width, height),
        Markup("<title>{}</title>").format(title),
    ]
    for tick in range(5):
        value = top_value * tick // 4
        y = top + plot_h - plot_h * tick / 4
        parts.append(
            Markup(
                '<line x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}" stroke="#ddd"/>'
                '<text x="{}" y="{:.1f}" text-anchor="end" font-size="11" fill="#444">{}</text>'
            ).format(left, width - 10, y, y, left - 4, y + 4, value)
        )
    for i, day in enumerate(days):
        x = left + i * slot + (slot - bar) / 2
        y = top + plot_h
        for channel, values in series.items():
            count = values[i]
            if not count:
                continue
            h = plot_h * count / top_value
            y -= h
            parts.append(
                Markup(
                    '<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}">'
                    "<title>{} {}: {}</title></rect>"
                ).format(
                    x, y, bar, h, CHANNEL_COLOURS.get(channel, FALLBACK_COLOUR), day, channel, count
                )
            )
        if totals[i]:
            parts.append(
                Markup(
                    '<text x="{:.1f}" y="{:.1f}" text-anchor="middle" font-size="11">{}</text>'
                ).format(x + bar / 2, y - 3, totals[i])
            )
        parts.append(
            Markup(
                '<text x="{:.1f}" y="{}" text-anchor="middle" font-size="11" fill="#444">{}</text>'
            ).format(x + bar / 2, height - bottom + 16, day.strftime("%d/%m"))
        )
    legend_x = left
    for channel in series:
        parts.append(
            Markup(
                '<rect x="{}" y="8" width="12" height="12" fill="{}"/>'
                '<text x="{}" y="18" font-size="12">{}</text>'
            ).format(
                legend_x, CHANNEL_COLOURS.get(channel, FALLBACK_COLOUR), legend_x + 16, channel
            )
        )
        legend_x += 24 + 8 * len(channel) + 16
    if not any(totals):
        parts.append(
            Markup('<text x="{}" y="{}" text-anchor="middle" font-size="14">{}</text>').format(
                left + plot_w / 2, top + plot_h / 2, empty
            )
        )
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def horizontal_bars(items: Sequence[tuple[str, int]], title: str, empty: str) -> Markup:
    """One labelled bar per item (topic, status), longest first as given."""
    label_w, bar_w, row = 260, 400, 24
    width = label_w + bar_w + 60
    height = max(len(items), 1) * row + 10
    top_value = max((n for _, n in items), default=0) or 1
    parts = [
        Markup(
            '<svg class="chart" role="img" aria-label="{}" viewBox="0 0 {} {}" '
            'xmlns="http://www.w3.org/2000/svg">'
        ).format(title, width, height),
        Markup("<title>{}</title>").format(title),
    ]
    for i, (label, count) in enumerate(items):
        y = 5 + i * row
        w = bar_w * count / top_value
        parts.append(
            Markup(
                '<text x="{}" y="{}" text-anchor="end" font-size="12">{}</text>'
                '<rect x="{}" y="{}" width="{:.1f}" height="{}" fill="#0b5394"/>'
                '<text x="{:.1f}" y="{}" font-size="12">{}</text>'
            ).format(
                label_w - 6,
                y + 16,
                label,
                label_w,
                y + 3,
                w,
                row - 8,
                label_w + w + 4,
                y + 16,
                count,
            )
        )
    if not items:
        parts.append(
            Markup('<text x="{}" y="20" text-anchor="middle" font-size="14">{}</text>').format(
                width / 2, empty
            )
        )
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)
