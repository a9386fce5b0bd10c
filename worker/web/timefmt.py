"""Times as a clinic admin reads them: in the organisation's zone, and relative to now."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def org_zone(org: object) -> ZoneInfo:
    """The organisation's time zone (`org add --timezone`, an IANA name validated when it is set)."""
    try:
        return ZoneInfo(org.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local(moment: datetime | None, zone: ZoneInfo) -> str:
    """'25 Nov 2026, 14:05 CET'."""
    if moment is None:
        return ""
    at = moment.astimezone(zone)
    return f"{at.day} {at:%b %Y, %H:%M} {at.tzname()}"


def relative(moment: datetime | None, now: datetime) -> str:
    """'3 hours ago', 'in 12 min', 'just now'."""
    if moment is None:
        return ""
    seconds = (moment - now).total_seconds()
    span = abs(seconds)
    if span < 45:
        return "just now" if seconds <= 0 else "in under a minute"
    for size, unit in ((86400 * 365, "year"), (86400 * 30, "month"), (86400, "day"), (3600, "hour")):
        if span >= size:
            count = round(span / size)
            text = f"{count} {unit}{'' if count == 1 else 's'}"
            break
    else:
        text = f"{max(1, round(span / 60))} min"
    return f"in {text}" if seconds > 0 else f"{text} ago"
