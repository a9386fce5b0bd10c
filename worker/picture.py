"""Draws the sharing picture as server-rendered SVG, for the org page and the HTML report.

The core decides each practitioner's state and each pair's kind (`sharing.picture`); this
module only stores that (`picture_document`, kept in a run's counts) and draws it
(`render_picture`): up to NODE_LINK_LIMIT practitioners as a node-link picture whose labels are
placed so that they never overlap, more as a matrix in team order, shaded by shared patients.
No JavaScript: the SVG and its legend are plain markup, readable as they arrive.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

import numpy as np
from markupsafe import Markup

from sharing.picture import PAIR_KINDS, PairKind, PractitionerState, SharingPicture

VERSION = 2
NODE_LINK_LIMIT = 15
MAX_PAIRS = 5000  # the heaviest pairs, at-risk first, are kept; the total is recorded

# state: (fill, shape, legend text)
STATES: dict[str, tuple[str, str, str]] = {
    PractitionerState.SHARING_PATIENTS.value: (
        "#1e8449",
        "circle",
        "shares patients in practitioner sharing",
    ),
    PractitionerState.CONTENT_ONLY.value: ("#f39c12", "circle", "in practitioner sharing, content only"),
    PractitionerState.NOT_IN_SHARING.value: (
        "#ffffff",
        "circle",
        "licensed and confirmed, not in practitioner sharing",
    ),
    PractitionerState.UNCONFIRMED.value: ("#5dade2", "circle", "has not accepted the PT Direct invitation"),
    PractitionerState.NO_LICENCE.value: ("#aab3bf", "circle", "no PT Direct practitioner licence"),
    PractitionerState.DEPARTED.value: ("#1d2330", "square", "departed: inactive in the PMS"),
    PractitionerState.MASTER_ACCOUNT.value: ("#7d3c98", "diamond", "the PT Direct master account"),
}
# kind: (line colour, cell shades from few to many shared patients, legend text)
PAIRS: dict[str, tuple[str, tuple[str, ...], str]] = {
    PairKind.AT_RISK.value: (
        "#c0392b",
        ("#f5b7b1", "#ec7063", "#cb4335", "#922b21"),
        "at risk: both are active, confirmed, licensed PT Direct users and at least one does not "
        "share patients, so each one's PMS integration creates its own copy of their patients",
    ),
    PairKind.SHARED.value: (
        "#52a27a",
        ("#c8e6d4", "#82c7a0", "#3f9a68", "#1e6b43"),
        "both share patients in PT Direct",
    ),
    PairKind.OUTSIDE.value: (
        "#b8c0cc",
        ("#e1e5eb", "#c2c9d3", "#98a2b0", "#6c7685"),
        "at least one of the two is not an active, confirmed, licensed PT Direct user "
        "(no duplicates from this pair)",
    ),
}
LABEL_CHARS = 26


def picture_document(picture: SharingPicture) -> dict[str, Any]:
    """The picture as JSON for a run's counts: practitioners in team order, pairs by index.

    Pairs ranked at risk first, then most shared patients, then by ids; the first MAX_PAIRS
    kept, listed by their practitioners' places. From the core's columns when it has them
    (array sorts, no object per pair); a picture made from objects goes through them.
    """
    columns = picture.columns
    if columns is None:
        return _document_of_objects(picture)
    table = columns.pairs
    ranks = table.ranks
    kinds = columns.kinds
    ranked = np.lexsort((ranks[table.seconds], ranks[table.firsts], -table.shared_patients, kinds != 0))
    kept = ranked[:MAX_PAIRS]
    firsts = columns.places[table.firsts[kept]]
    seconds = columns.places[table.seconds[kept]]
    listed = np.lexsort((seconds, firsts))  # a pair's two places are its own: no ties
    values = [kind.value for kind in PAIR_KINDS]
    return {
        "version": VERSION,
        "practitioners": [
            [pms_id, name, state._value_]
            for pms_id, name, state in zip(columns.ids, columns.names, columns.states, strict=True)
        ],
        "pairs": [
            [first, second, shared, values[kind]]
            for first, second, shared, kind in zip(
                firsts[listed].tolist(),
                seconds[listed].tolist(),
                table.shared_patients[kept][listed].tolist(),
                kinds[kept][listed].tolist(),
                strict=True,
            )
        ],
        "total_pairs": len(table),
    }


def _document_of_objects(picture: SharingPicture) -> dict[str, Any]:
    ranked = sorted(picture.pairs, key=lambda p: (not p.at_risk, -p.shared_patients, p.first, p.second))
    kept = ranked[:MAX_PAIRS]
    index = {person.pms_id: position for position, person in enumerate(picture.practitioners)}
    return {
        "version": VERSION,
        "practitioners": [[p.pms_id, p.name, p.state.value] for p in picture.practitioners],
        "pairs": sorted([index[p.first], index[p.second], p.shared_patients, p.kind.value] for p in kept),
        "total_pairs": len(picture.pairs),
    }


def render_picture(document: dict[str, Any] | None) -> Markup | None:
    """The picture and its legend as HTML, or None when the run stored no picture of this kind."""
    if not document or document.get("version") != VERSION or not document.get("pairs"):
        return None
    people = document["practitioners"]
    pairs = document["pairs"]
    linked = sorted({index for pair in pairs for index in pair[:2]})
    shown = [people[index] for index in linked]
    position = {index: place for place, index in enumerate(linked)}
    placed = [[position[a], position[b], shared, kind] for a, b, shared, kind in pairs]
    node_link = len(shown) <= NODE_LINK_LIMIT
    svg = _node_link(shown, placed) if node_link else _matrix(shown, placed)
    caption = (
        f"{len(pairs):,} pairs among {len(shown):,} practitioners who share patients in the PMS"
        + (
            f" (the {len(pairs):,} most important of {document['total_pairs']:,})"
            if len(pairs) < document["total_pairs"]
            else ""
        )
        + (
            f"; {len(people) - len(shown):,} more share none and are not drawn"
            if len(people) > len(shown)
            else ""
        )
        + "."
    )
    how = (
        "Each line joins two practitioners who saw the same patients; thicker means more patients."
        if node_link
        else "Each row and column is a practitioner, ordered so that teams form blocks; a filled "
        "cell means the two saw the same patients, darker means more. Scroll to see it all."
    )
    kind = "node-link" if node_link else "matrix"
    return Markup(
        f'<figure class="picture {kind}">'
        f'<figcaption class="meta">{escape(caption)} {escape(how)}</figcaption>'
        f'<div class="scroll picture-frame">{svg}</div>{_legend(shown, pairs, node_link)}</figure>'
    )


def _label(name: str) -> str:
    return name if len(name) <= LABEL_CHARS else name[: LABEL_CHARS - 1] + "…"


def _text_width(text: str, font: float) -> float:
    """A generous estimate of rendered width (system sans-serif averages ~0.55 em a character)."""
    return len(text) * font * 0.62 + 2


def _marker(state: str, x: float, y: float, size: float, titled: bool = True) -> str:
    """A state's mark; the matrix draws hundreds, so there they go untitled in a stroked group."""
    fill, shape, text = STATES.get(state, ("#ffffff", "circle", state))
    title = f"<title>{escape(text)}</title>" if titled else ""
    common = f'fill="{fill}"' + (f' stroke="#1d2330" class="marker {escape(state)}"' if titled else "")
    if shape == "square":
        return (
            f'<rect x="{x - size:.1f}" y="{y - size:.1f}" width="{2 * size:.1f}" '
            f'height="{2 * size:.1f}" {common}>{title}</rect>'
        )
    if shape == "diamond":
        d = size * 1.3
        points = f"{x:.1f},{y - d:.1f} {x + d:.1f},{y:.1f} {x:.1f},{y + d:.1f} {x - d:.1f},{y:.1f}"
        return f'<polygon points="{points}" {common}>{title}</polygon>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{size:.1f}" {common}>{title}</circle>'


def _pair_title(people: list[list[Any]], a: int, b: int, shared: int, kind: str) -> str:
    what = {"at_risk": " (at risk)", "shared": " (both share patients)", "outside": ""}[kind]
    return escape(f"{people[a][1]} and {people[b][1]}: {shared} shared patients{what}")


# Node-link ----------------------------------------------------------------------------------

NODE_FONT = 14
NODE_SIZE = 7


def _label_box(x: float, y: float, angle: float, width: float) -> tuple[float, float, float, float, str]:
    """(left, top, right, bottom, anchor) of a label placed outward from its node."""
    height = NODE_FONT * 1.25
    gap = NODE_SIZE + 5
    cos, sin = math.cos(angle), math.sin(angle)
    if cos > 0.3:
        return x + gap, y - height / 2, x + gap + width, y + height / 2, "start"
    if cos < -0.3:
        return x - gap - width, y - height / 2, x - gap, y + height / 2, "end"
    if sin < 0:
        return x - width / 2, y - gap - height, x + width / 2, y - gap, "middle"
    return x - width / 2, y + gap, x + width / 2, y + gap + height, "middle"


def _overlap(a: tuple[float, ...], b: tuple[float, ...], pad: float = 3) -> bool:
    return a[0] < b[2] + pad and b[0] < a[2] + pad and a[1] < b[3] + pad and b[1] < a[3] + pad


def _circle_layout(people: list[list[Any]]) -> tuple[list[tuple[float, float]], list[tuple]]:
    """Node positions on a circle grown until no label touches another label or a node."""
    count = len(people)
    widths = [_text_width(_label(person[1]), NODE_FONT) for person in people]
    radius = 40.0 + 14 * count
    while True:
        angles = [-math.pi / 2 + 2 * math.pi * i / count for i in range(count)]
        nodes = [(radius * math.cos(a), radius * math.sin(a)) for a in angles]
        boxes = [_label_box(x, y, a, w) for (x, y), a, w in zip(nodes, angles, widths, strict=True)]
        dots = [(x - NODE_SIZE, y - NODE_SIZE, x + NODE_SIZE, y + NODE_SIZE) for x, y in nodes]
        clear = all(
            not _overlap(boxes[i], boxes[j]) for i in range(count) for j in range(i + 1, count)
        ) and all(not _overlap(boxes[i], dots[j]) for i in range(count) for j in range(count))
        if clear or radius > 2000:
            return nodes, boxes
        radius += 10


def _node_link(people: list[list[Any]], pairs: list[list[Any]]) -> str:
    nodes, boxes = _circle_layout(people)
    margin = 10
    left = min(min(b[0] for b in boxes), min(x for x, _ in nodes) - NODE_SIZE * 1.5) - margin
    top = min(min(b[1] for b in boxes), min(y for _, y in nodes) - NODE_SIZE * 1.5) - margin
    right = max(max(b[2] for b in boxes), max(x for x, _ in nodes) + NODE_SIZE * 1.5) + margin
    bottom = max(max(b[3] for b in boxes), max(y for _, y in nodes) + NODE_SIZE * 1.5) + margin
    width, height = right - left, bottom - top
    heaviest = max(pair[2] for pair in pairs) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sharing-picture" role="img" '
        f'aria-label="Practitioners who share patients" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="{left:.1f} {top:.1f} {width:.1f} {height:.1f}" font-family="system-ui, sans-serif">'
    ]
    order = {"outside": 0, "shared": 1, "at_risk": 2}  # at-risk lines are drawn last, on top
    for a, b, shared, kind in sorted(pairs, key=lambda p: (order[p[3]], p[2])):
        colour = PAIRS[kind][0]
        dash = ' stroke-dasharray="7 4"' if kind == "at_risk" else ""
        (x1, y1), (x2, y2) = nodes[a], nodes[b]
        parts.append(
            f'<line class="pair {kind}" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
            f'stroke="{colour}" stroke-width="{1.5 + 4.5 * math.sqrt(shared / heaviest):.1f}"'
            f"{dash}><title>{_pair_title(people, a, b, shared, kind)}</title></line>"
        )
    for person, (x, y), box in zip(people, nodes, boxes, strict=True):
        parts.append(_marker(person[2], x, y, NODE_SIZE))
        anchor_x = {"start": box[0], "end": box[2], "middle": (box[0] + box[2]) / 2}[box[4]]
        baseline = (box[1] + box[3]) / 2 + NODE_FONT * 0.35
        parts.append(
            f'<text class="label" x="{anchor_x:.1f}" y="{baseline:.1f}" font-size="{NODE_FONT}" '
            f'text-anchor="{box[4]}" fill="#1d2330">{escape(_label(person[1]))}'
            f"<title>{escape(person[1])}</title></text>"
        )
    parts.append("</svg>")
    return "".join(parts)


# Matrix -------------------------------------------------------------------------------------

CELL = 14
MATRIX_FONT = 11


def _levels(pairs: list[list[Any]]) -> list[int]:
    """Lower bounds of the four shades: 1 and three geometric steps up to the heaviest pair."""
    heaviest = max((pair[2] for pair in pairs), default=1)
    bounds = [1]
    for step in (1, 2, 3):
        bound = max(round(heaviest ** (step / 4)), bounds[-1] + 1)
        bounds.append(bound)
    return bounds


def _shade(shared: int, levels: list[int]) -> int:
    return max(index for index, bound in enumerate(levels) if shared >= bound or index == 0)


def _matrix(people: list[list[Any]], pairs: list[list[Any]]) -> str:
    count = len(people)
    label_width = math.ceil(max(_text_width(_label(p[1]), MATRIX_FONT) for p in people)) + 22
    side = count * CELL
    width, height = label_width + side + 10, label_width + side + 10
    x0, y0 = label_width, label_width
    levels = _levels(pairs)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sharing-picture" role="img" '
        f'aria-label="Practitioners who share patients, as a matrix" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" font-family="system-ui, sans-serif">',
        f'<rect x="{x0}" y="{y0}" width="{side}" height="{side}" fill="#ffffff" stroke="#d8dde6"/>',
    ]
    for i in range(0, count, 2):  # banded rows help follow a line across
        parts.append(f'<rect x="{x0}" y="{y0 + i * CELL}" width="{side}" height="{CELL}" fill="#f3f5f8"/>')
    markers = []
    for i, person in enumerate(people):
        middle = i * CELL + CELL / 2
        name = escape(_label(person[1]))
        full = f"<title>{escape(person[1])}</title>" if len(person[1]) > LABEL_CHARS else ""
        markers.append(_marker(person[2], x0 - 8, y0 + middle, 4.5, titled=False))
        parts.append(
            f'<text class="label row" x="{x0 - 16}" y="{y0 + middle + MATRIX_FONT * 0.35:.1f}" '
            f'font-size="{MATRIX_FONT}" text-anchor="end" fill="#1d2330">{name}{full}</text>'
        )
        markers.append(_marker(person[2], x0 + middle, y0 - 8, 4.5, titled=False))
        parts.append(
            f'<text class="label column" '
            f'transform="translate({x0 + middle + MATRIX_FONT * 0.35:.1f} {y0 - 16}) rotate(-90)" '
            f'font-size="{MATRIX_FONT}" fill="#1d2330">{name}</text>'
        )
    parts.append(f'<g stroke="#1d2330" stroke-width="1">{"".join(markers)}</g>')
    for a, b, shared, kind in pairs:
        fill = PAIRS[kind][1][_shade(shared, levels)]
        stroke = ' stroke="#641e16" stroke-width="1.2"' if kind == "at_risk" else ""
        title = _pair_title(people, a, b, shared, kind)
        square = f"h{CELL - 2}v{CELL - 2}h{2 - CELL}z"
        outline = "".join(
            f"M{x0 + column * CELL + 1} {y0 + row * CELL + 1}{square}" for row, column in ((a, b), (b, a))
        )
        parts.append(
            f'<path class="cell {kind}" d="{outline}" fill="{fill}"{stroke}><title>{title}</title></path>'
        )
    parts.append("</svg>")
    return "".join(parts)


# Legend -------------------------------------------------------------------------------------


def _swatch(inner: str, width: int = 26, height: int = 16) -> str:
    return (
        f'<svg class="swatch" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-hidden="true">{inner}</svg>'
    )


def _legend(people: list[list[Any]], pairs: list[list[Any]], node_link: bool) -> str:
    state_counts: dict[str, int] = {}
    for person in people:
        state_counts[person[2]] = state_counts.get(person[2], 0) + 1
    kind_counts: dict[str, int] = {}
    for pair in pairs:
        kind_counts[pair[3]] = kind_counts.get(pair[3], 0) + 1
    items = ['<div class="legend"><h3>Practitioners</h3><ul>']
    for state, (_fill, _shape, text) in STATES.items():
        items.append(
            f'<li data-state="{state}">{_swatch(_marker(state, 13, 8, 5.5))}'
            f'<span>{escape(text)} <span class="count">({state_counts.get(state, 0)})</span></span></li>'
        )
    items.append("</ul><h3>Pairs</h3><ul>")
    levels = _levels(pairs)
    for kind, (colour, shades, text) in PAIRS.items():
        if node_link:
            dash = ' stroke-dasharray="7 4"' if kind == "at_risk" else ""
            mark = f'<line x1="1" y1="8" x2="25" y2="8" stroke="{colour}" stroke-width="3"{dash}/>'
        else:
            stroke = ' stroke="#641e16" stroke-width="1.2"' if kind == "at_risk" else ""
            mark = "".join(
                f'<rect x="{1 + 6 * i}" y="3" width="5" height="10" fill="{shade}"{stroke}/>'
                for i, shade in enumerate(shades)
            )
        items.append(
            f'<li data-kind="{kind}">{_swatch(mark)}<span>{escape(text)} '
            f'<span class="count">({kind_counts.get(kind, 0)})</span></span></li>'
        )
    if not node_link:
        ranges = [
            f"{low}" if high - low == 1 else f"{low}–{high - 1}"
            for low, high in zip(levels, [*levels[1:], None], strict=True)
            if high is not None
        ] + [f"{levels[-1]}+"]
        items.append(
            f'<li class="shades">Shades, lightest to darkest: {escape(", ".join(ranges))} '
            "shared patients.</li>"
        )
    else:
        heaviest = max(pair[2] for pair in pairs)
        items.append(f"<li>Line width: from 1 to {heaviest} shared patients.</li>")
    items.append("</ul></div>")
    return "".join(items)
