"""`ptsync demo --size large` and the standalone HTML report with the sharing picture."""

from __future__ import annotations

from tests.cli.test_cli import ptsync


def test_the_large_demo_builds_a_clinic_of_300_and_its_html_report_draws_the_matrix(tmp_path):
    # Given a fresh folder; When the large demo runs and its report is written as HTML
    demo = ptsync(tmp_path, "demo", "--size", "large")
    written = ptsync(tmp_path, "report", "demo-clinic-300", "--format", "html", "--output", "report.html")
    # Then the clinic has 300 practitioners and the file draws the same picture as the page
    assert demo.returncode == 0, demo.stderr
    assert written.returncode == 0, written.stderr
    html = (tmp_path / "report.html").read_text()
    assert "<li>300 practitioners</li>" in html
    assert '<figure class="picture matrix">' in html
    assert html.count('<path class="cell at_risk"') > 0 and '<li data-kind="at_risk">' in html
    # And it stands alone: the stylesheet embedded, nothing fetched from anywhere
    assert ".legend" in html.split("</style>")[0]
    assert "<link" not in html and "<script" not in html
    assert 'src="http' not in html and 'href="http' not in html
