"""The org page in Chromium for generated clinics of 7, 15, 40 and 300, on a laptop and a phone.

Measured, not eyeballed: picture labels' bounding boxes never overlap, no element is wider
than the viewport (a horizontal scroller such as the picture frame counts as one element), the
page stays under 3,000 px before anything is expanded and the server answers in under a second.
Screenshots land in test-artifacts/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from tests.web.conftest import chromium
from worker.clock import utcnow
from worker.demo_generated import write_generated_clinic
from worker.services.credentials import create_admin_token
from worker.services.orgs import NewOrganisation, add_organisation
from worker.services.sync import request_sync, run_sync

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
WIDTHS = (1280, 390)
MAX_HEIGHT = 3000
MAX_SERVER_SECONDS = 1.0
pytestmark = pytest.mark.slow

# Runs in the page: elements sticking out of the viewport. Children of a horizontal scroller are
# skipped (the scroller itself is checked), as are hidden ones (inside closed <details>).
OVERFLOW_JS = """() => {
  const width = document.documentElement.clientWidth, wide = [];
  for (const el of document.querySelectorAll('body *')) {
    if (el.parentElement && el.parentElement.closest('.scroll')) continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;
    if (box.right > width + 0.5 || box.left < -0.5) wide.push(`${el.tagName}.${el.className} ${Math.round(box.left)}..${Math.round(box.right)}`);
  }
  return {wide, scrollWidth: document.documentElement.scrollWidth, width};
}"""
# Runs in the page: pairs of picture labels (and markers) whose boxes intersect.
OVERLAP_JS = """(selector) => {
  const boxes = [...document.querySelectorAll(selector)].map(el => [el.textContent, el.getBoundingClientRect()]);
  const hits = [];
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
    const [a, p] = boxes[i], [b, q] = boxes[j];
    if (p.left < q.right && q.left < p.right && p.top < q.bottom && q.top < p.bottom) hits.push(`${a} / ${b}`);
  }
  return {count: boxes.length, hits};
}"""


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as instance:
        yield instance


def _synced_clinic(runtime, tmp_path: Path, practitioners: int) -> tuple[str, str]:
    slug = f"clinic-{practitioners}"
    folder = tmp_path / slug
    write_generated_clinic(folder, utcnow().date(), practitioners)
    add_organisation(
        runtime,
        NewOrganisation(
            slug=slug,
            pms="csv",
            pms_path=str(folder),
            ptdirect="file",
            ptdirect_path=str(folder / "ptdirect.json"),
        ),
    )
    run_id, _ = request_sync(runtime, slug, "manual")
    assert run_sync(runtime, run_id).status == "succeeded"
    return slug, create_admin_token(runtime, slug, "test")


def _log_in(browser, server: str, slug: str, token: str, width: int):
    page = browser.new_page(viewport={"width": width, "height": 900}, is_mobile=width < 500)
    page.goto(f"{server}/orgs/{slug}/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_selector("#status")
    return page


def _no_inline_code(html: str) -> None:
    """Content-Security-Policy `default-src 'self'` allows no inline style or script."""
    assert not re.search(r"\sstyle=", html)
    assert "<style" not in html
    assert not re.search(r"<script(?![^>]*\ssrc=)", html)


@pytest.mark.parametrize("practitioners", [7, 15, 40, 300])
def test_the_org_page_reads_on_a_laptop_and_a_phone(runtime, tmp_path, server, browser, practitioners):
    # Given a generated clinic of this size, synced
    slug, token = _synced_clinic(runtime, tmp_path, practitioners)
    for width in WIDTHS:
        # When an admin opens its page at this width
        page = _log_in(browser, server, slug, token, width)
        cookies = {c["name"]: c["value"] for c in page.context.cookies()}
        started = time.perf_counter()
        response = httpx.get(f"{server}/orgs/{slug}/", cookies=cookies)
        served_in = time.perf_counter() - started
        height = page.evaluate("document.documentElement.scrollHeight")
        page.screenshot(path=str(ARTIFACTS / f"org-{practitioners}-{width}.png"), full_page=True)
        # Then the server answers in time, with no inline style or script
        assert response.status_code == 200
        assert served_in < MAX_SERVER_SECONDS, served_in
        _no_inline_code(response.text)
        # And a big clinic's page is short until something is expanded
        if practitioners >= 40:
            assert height < MAX_HEIGHT, height
        # And the picture's labels never overlap (each other, or a node in the node-link picture)
        if practitioners <= 15:
            assert page.locator("#picture figure.node-link").count() == 1
            marks = page.evaluate(OVERLAP_JS, "#picture svg.sharing-picture :is(.label, .marker)")
            assert marks["count"] == 2 * practitioners and marks["hits"] == []
            drawn = page.locator("#picture line.pair").count()
        else:
            assert page.locator("#picture figure.matrix").count() == 1
            rows = page.evaluate(OVERLAP_JS, "#picture svg.sharing-picture .label.row")
            columns = page.evaluate(OVERLAP_JS, "#picture svg.sharing-picture .label.column")
            assert rows["hits"] == [] and columns["hits"] == [] and rows["count"] > 15
            drawn = page.locator("#picture path.cell").count()
        # And the legend counts exactly the pairs drawn
        legend = page.locator("#picture .legend li[data-kind] .count").all_inner_texts()
        assert sum(int(text.strip("()")) for text in legend) == drawn
        # And a finding's "Fixed by" link opens the collapsed proposal at that operation
        group = page.locator("#findings details.group:has(.fixes a)").first
        if group.get_attribute("open") is None:
            group.locator("summary").click()
        link = group.locator(".fixes a").first
        target = link.get_attribute("href")
        link.click()
        assert page.locator(target).is_visible(), target
        # And nothing is wider than the viewport, collapsed or with every group expanded
        layout = page.evaluate(OVERFLOW_JS)
        assert layout["wide"] == [] and layout["scrollWidth"] <= width, layout
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        layout = page.evaluate(OVERFLOW_JS)
        assert layout["wide"] == [] and layout["scrollWidth"] <= width, layout
        expanded = ARTIFACTS / f"org-{practitioners}-{width}-expanded.png"
        page.screenshot(path=str(expanded), full_page=practitioners <= 7)
        page.close()


def test_docs_render_with_the_outside_network_blocked(runtime, server, browser):
    # Given a browser that may reach nothing but this server, under `default-src 'self'`
    page = browser.new_page()
    blocked: list[str] = []
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))

    def only_local(route):
        if route.request.url.startswith(server):
            answer = route.fetch()
            headers = {**answer.headers, "content-security-policy": "default-src 'self'"}
            route.fulfill(response=answer, headers=headers)
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    # When it opens /docs
    page.goto(f"{server}/docs")
    # Then Swagger UI draws the admin API from files served here, asking nothing from outside
    page.wait_for_selector(".swagger-ui .info .title", timeout=15000)
    assert "ptsync" in page.inner_text(".swagger-ui .info .title")
    page.wait_for_selector("[data-path='/api/v1/orgs/{slug}/syncs']")
    assert blocked == []
    assert not [text for text in console if "Content Security Policy" in text]
    _no_inline_code(page.content().split('<div id="swagger-ui"')[0])
    page.screenshot(path=str(ARTIFACTS / "docs.png"))


def test_sync_now_follows_the_run_until_it_ends_and_the_landing_page_leads_to_login(
    runtime, tmp_path, server, browser
):
    # Given a synced clinic of 7 and its admin on the org page
    slug, token = _synced_clinic(runtime, tmp_path, 7)
    page = _log_in(browser, server, slug, token, 390)
    # When they press "Sync now"
    page.click("text=Sync now")
    # Then a run page shows the run's progress and refreshes itself until the run has succeeded
    page.wait_for_url(re.compile(r"/orgs/clinic-7/runs/[0-9a-f]+$"))
    page.wait_for_selector("#run[data-status=succeeded]", timeout=30000)
    assert "Done:" in page.inner_text("#run")
    page.screenshot(path=str(ARTIFACTS / "run-390.png"), full_page=True)
    _no_inline_code(page.content())
    # And the org page's header names that run's status
    page.click("text=See the report")
    assert "succeeded" in page.inner_text("#status")
    # When someone opens / and asks for an organisation
    page.goto(server + "/")
    _no_inline_code(page.content())
    page.screenshot(path=str(ARTIFACTS / "landing-390.png"), full_page=True)
    page.fill("#slug", slug)
    page.click("text=Go to its login page")
    # Then they reach that organisation's login page
    page.wait_for_url(f"{server}/orgs/{slug}/login")
    page.close()
