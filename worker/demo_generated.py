"""Generated demo clinics of any size (`ptsync demo --size medium|large`, and the page tests).

Practitioners work in teams of 4 to 10 that share many patients, with a few patients shared
across teams. Every PT Direct state occurs: the first seven practitioners take one state each
(master account, sharing patients, not in sharing, content only, unconfirmed, no licence,
departed), the rest draw one, mostly "sharing patients". Same size and seed, same files; dates
are relative to `today` so the clinic never ages out of the lookback window.
"""

from __future__ import annotations

import csv
import json
import random
from datetime import date, timedelta
from pathlib import Path

FIRST = (
    "Ada",
    "Ben",
    "Cara",
    "Dan",
    "Eve",
    "Fay",
    "Gus",
    "Hana",
    "Ivo",
    "Jun",
    "Kim",
    "Lea",
    "Max",
    "Nia",
    "Oto",
    "Pia",
    "Rui",
    "Sol",
    "Tom",
    "Uma",
    "Vic",
    "Wen",
    "Xia",
    "Yan",
    "Zoe",
    "Abel",
    "Bea",
    "Cruz",
    "Dina",
    "Emil",
    "Flor",
    "Gaia",
    "Hugo",
    "Iris",
    "Jonas",
    "Kai",
    "Lina",
    "Milo",
    "Nora",
    "Omar",
    "Paz",
    "Quinn",
    "Rosa",
    "Sami",
    "Tara",
    "Ugo",
    "Vera",
    "Will",
    "Yara",
    "Zack",
)
LAST = (
    "Silva",
    "Ode",
    "Lim",
    "Roe",
    "Park",
    "Wu",
    "Hale",
    "Ito",
    "Marsh",
    "Sato",
    "Dahl",
    "Novak",
    "Okafor",
    "Berg",
    "Costa",
    "Lund",
    "Moreau",
    "Rossi",
    "Tanaka",
    "Varga",
    "Walsh",
    "Young",
    "Abbott",
    "Brandt",
    "Chen",
    "Duarte",
    "Evans",
    "Fischer",
    "Garcia",
    "Holm",
    "Ibsen",
    "Jensen",
    "Kowalski",
    "Larsen",
    "Mendes",
    "Nakamura",
    "Olsen",
    "Petrov",
    "Quist",
    "Reyes",
    "Schmidt",
    "Torres",
    "Ueda",
    "Vogel",
)
# The first practitioners take these states, so even a clinic of 7 shows every one.
FIXED_STATES = ("master", "sharing", "not_in_sharing", "content", "unconfirmed", "no_licence", "departed")
DRAWN_STATES = (
    ("sharing", 0.78),
    ("not_in_sharing", 0.07),
    ("content", 0.04),
    ("unconfirmed", 0.04),
    ("no_licence", 0.03),
    ("departed", 0.04),
)
DOMAIN = "generated-clinic.example"
# `ptsync demo --size`: (practitioners, slug, folder); "small" is worker.demo's clinic instead
DEMO_SIZES = {
    "medium": (40, "demo-clinic-40", "ptsync-demo-40"),
    "large": (300, "demo-clinic-300", "ptsync-demo-300"),
}


def _names(count: int, rng: random.Random) -> list[str]:
    pool = [f"{first} {last}" for last in LAST for first in FIRST]
    rng.shuffle(pool)
    return pool[:count]


def _teams(count: int, rng: random.Random) -> list[list[int]]:
    order = list(range(count))
    rng.shuffle(order)
    teams, start = [], 0
    while start < count:
        size = min(rng.randint(4, 10), count - start)
        if count - start - size < 3:  # no team of one or two at the end
            size = count - start
        teams.append(order[start : start + size])
        start += size
    return teams


def write_generated_clinic(folder: Path, today: date, practitioners: int, seed: int = 13) -> None:
    """Write practitioners.csv, patient_access.csv and ptdirect.json for a clinic of this size."""
    rng = random.Random(seed * 1000 + practitioners)
    folder.mkdir(parents=True, exist_ok=True)
    names = _names(practitioners, rng)
    ids = [str(3001 + index) for index in range(practitioners)]
    emails = [f"{name.lower().replace(' ', '.')}@{DOMAIN}" for name in names]
    weights = [weight for _, weight in DRAWN_STATES]
    states = [
        FIXED_STATES[index]
        if index < len(FIXED_STATES)
        else rng.choices([state for state, _ in DRAWN_STATES], weights)[0]
        for index in range(practitioners)
    ]

    with (folder / "practitioners.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "email", "active", "updated_at"])
        for pid, name, email, state in zip(ids, names, emails, states, strict=True):
            active = "false" if state == "departed" else "true"
            writer.writerow([pid, name, email, active, f"{today - timedelta(days=30)}T09:00:00Z"])
    rows = _access_rows(rng, today, ids)
    with (folder / "patient_access.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["practitioner_id", "patient_id", "source", "last_seen", "status"])
        writer.writerows(rows)
    snapshot = _snapshot(ids, names, emails, states)
    (folder / "ptdirect.json").write_text(json.dumps(snapshot, indent=2) + "\n")


def _access_rows(rng: random.Random, today: date, ids: list[str]) -> list[tuple[str, str, str, str, str]]:
    """Teams sharing patients, a few patients shared across teams, and patients seen by one person."""
    practitioners = len(ids)
    rows: list[tuple[str, str, str, str, str]] = []
    patient = 100_000

    def visit(member: int) -> None:
        for _ in range(rng.randint(1, 2)):
            seen = today - timedelta(days=rng.randint(0, 420))
            status = "cancelled" if rng.random() < 0.05 else "active"
            rows.append((ids[member], str(patient), "appointment", seen.isoformat(), status))

    teams = _teams(practitioners, rng)
    for team in teams:
        for _ in range(8 * len(team)):
            patient += 1
            for member in rng.sample(team, min(len(team), rng.choice((2, 2, 3)))):
                visit(member)
    for _ in range(max(1, practitioners // 6)):  # a few patients shared across teams
        if len(teams) < 2:
            break
        patient += 1
        for team in rng.sample(teams, 2):
            visit(rng.choice(team))
    for _ in range(practitioners * 3):  # patients seen by one practitioner only
        patient += 1
        visit(rng.randrange(practitioners))
    return rows


def _snapshot(ids: list[str], names: list[str], emails: list[str], states: list[str]) -> dict:
    users, members, recipients = [], [], []
    master = emails[0]
    for pid, name, email, state in zip(ids, names, emails, states, strict=True):
        if state == "no_licence":
            continue
        users.append(
            {
                "email": email,
                "name": name,
                "status": "unconfirmed" if state == "unconfirmed" else "confirmed",
                "practitioner_access": True,
                "pms_link": {"system": "csv", "practitioner_id": pid},
            }
        )
        if state in ("sharing", "content", "departed"):
            members.append({"email": email, "share_content": True, "share_patients": state != "content"})
        if state in ("sharing", "departed"):
            recipients.append(email)
    snapshot = {
        "schema": "ptsync.ptdirect/1",
        "users": users,
        "master_account": {"email": master, "recipients": recipients},
        "practitioner_sharing": {"members": members},
    }
    return snapshot
