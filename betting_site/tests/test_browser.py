"""The back office and the API docs in a real browser: headless Chromium (Debian's
package) driven by Playwright against pytest-django's live server.

Skipped when Chromium is missing (``apt-get install chromium``; ``.ci/run`` installs
it). Screenshots go to ``BROWSER_SCREENSHOTS_DIR`` (default
``artifacts/screenshots/``, git-ignored). ``-m "not browser"`` leaves these out.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.utils import timezone

from accounts.tests.factories import UserFactory
from betting_site.tests.backoffice_data import make_backoffice_data

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("BROWSER_TESTS_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(
    os.environ.get("BROWSER_SCREENSHOTS_DIR", ROOT / "artifacts" / "screenshots")
)
PASSWORD = "browser-test-password-1"
# The content security policy reports every blocked inline style or script: the
# page's own listener (installed before any page script runs) logs it here.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (event) => {
    console.error(`CSP violation: ${event.violatedDirective} ${event.blockedURI}`);
});
"""

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"browser tests need Chromium at {CHROMIUM}: apt-get install chromium "
        "(or set BROWSER_TESTS_CHROMIUM)",
    ),
]
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="browser tests need playwright (requirements-dev)"
)


class Tab:
    """A browser page and what its console said about the security policy."""

    def __init__(self, page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.csp_violations: list[str] = []
        page.on("console", self._on_console)

    def _on_console(self, message) -> None:
        text = message.text
        if "CSP violation" in text or "Content Security Policy" in text:
            self.csp_violations.append(f"{self.page.url}: {text}")

    def goto(self, path: str):
        response = self.page.goto(self.base_url + path)
        assert response is not None
        return response

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=path, full_page=True)
        assert path.stat().st_size > 1000
        return path


@pytest.fixture
def tab(live_server) -> Iterator[Tab]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            context.add_init_script(CSP_LISTENER)
            context.set_default_timeout(20_000)
            yield Tab(context.new_page(), live_server.url)
        finally:
            browser.close()


@pytest.fixture
def backoffice(transactional_db):
    """The data set and a staff user, committed for the live server. Created
    before the browser starts (list it before ``tab``): ORM work done while
    Playwright runs its event loop here would use connections nobody closes."""
    data = make_backoffice_data(timezone.now())
    UserFactory(username="boss", is_staff=True, is_superuser=True, password=PASSWORD)
    return data


def log_in(tab: Tab, username: str) -> None:
    tab.goto("/admin/")
    assert "/admin/login/" in tab.page.url
    tab.page.fill("#id_username", username)
    tab.page.fill("#id_password", PASSWORD)
    tab.page.click("input[type=submit]")
    tab.page.wait_for_url(tab.base_url + "/admin/")


def test_staff_log_in_and_see_the_dashboard_a_bet_and_an_api_log(backoffice, tab):
    data, page = backoffice, tab.page

    log_in(tab, "boss")

    dashboard = page.locator("#backoffice-dashboard")
    sync_api.expect(dashboard).to_be_visible()
    figure = "#{} .backoffice-figure"
    sync_api.expect(page.locator(figure.format("tile-bets-today"))).to_have_text("3")
    sync_api.expect(page.locator(figure.format("tile-volume-today"))).to_have_text(
        "6.50"
    )
    sync_api.expect(page.locator(figure.format("tile-win-rate"))).to_have_text("66.7%")
    sync_api.expect(page.locator(figure.format("tile-pending"))).to_have_text("1")
    sync_api.expect(page.locator(figure.format("tile-unknown"))).to_have_text("1")
    sync_api.expect(page.locator(figure.format("tile-discrepancies"))).to_have_text("1")
    sync_api.expect(page.locator("#provider-health tbody tr")).to_have_count(2)
    bars = page.locator("#bets-per-hour rect.backoffice-bar")
    sync_api.expect(bars).to_have_count(24)
    assert page.locator("#app-list, .app-betting").count() > 0  # the app list stays
    # The style sheet is a file, so it applies under the policy: tiles in a row.
    tiles = page.locator(".backoffice-tiles")
    assert tiles.evaluate("node => getComputedStyle(node).display") == "grid"
    bar_heights = bars.evaluate_all("nodes => nodes.map(node => node.getBBox().height)")
    assert any(height > 0 for height in bar_heights)
    tab.screenshot("dashboard")

    page.click("#tile-pending a")
    page.wait_for_url("**/admin/betting/bet/?status__exact=pending")
    sync_api.expect(page.locator("#result_list tbody tr")).to_have_count(1)

    bet = data.bets["won_today"]
    tab.goto(f"/admin/betting/bet/{bet.pk}/change/")
    sync_api.expect(page.get_by_role("heading", name=str(bet))).to_be_visible()
    sync_api.expect(page.locator(".field-external_bet_id")).to_contain_text("ext-1")
    tab.screenshot("bet-change")

    log = data.logs["unknown"]
    tab.goto(f"/admin/auditlog/apilog/{log.pk}/change/")
    body = page.locator(".field-request_pretty pre")
    sync_api.expect(body).to_contain_text("[redacted]")
    assert body.evaluate("node => getComputedStyle(node).whiteSpace") == "pre-wrap"
    tab.screenshot("apilog-change")

    assert tab.csp_violations == []


def test_swagger_ui_lists_the_operations_offline(tab):
    page = tab.page
    tab.goto("/api/docs")

    page.wait_for_selector(".opblock")
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/api/bets" in paths
    assert "/api/auth/login" in paths
    tab.screenshot("api-docs")
    # Its start-up script is a same-origin file; only the template's cosmetic
    # inline style rules are blocked.
    assert [v for v in tab.csp_violations if "script-src" in v] == []
