"""/docs and /redoc in headless Chromium, with no network beyond loopback: the pages render from the
service's own assets, "Authorize" takes a token, and "Try it out" creates a task."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Request, expect, sync_playwright

from tests.conftest import IN_CI, make_token
from tests.processes import running_service

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Every host name resolves to nothing but loopback, so a page that needed the internet would break here.
OFFLINE_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TASK_PATHS = ["/api/v1/users/{user_id}/tasks", "/api/v1/users/{user_id}/tasks/{task_id}"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        message = "Chromium is not installed (make e2e installs it): the browser test did not run"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=OFFLINE_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    opened = context.new_page()
    opened.set_default_timeout(20_000)
    yield opened
    context.close()


@pytest.fixture
def service_url(database_url: str) -> Iterator[str]:
    with running_service(database_url) as service:
        yield service.base_url


def _outside_requests(page: Page, base_url: str) -> list[str]:
    """Requests the page sent beyond the service; one the docs' Content-Security-Policy stopped in the
    browser never left it, and is not counted."""
    outside: list[str] = []
    host = urlsplit(base_url).netloc

    def is_outside(request: Request) -> bool:
        return urlsplit(request.url).scheme in {"http", "https"} and urlsplit(request.url).netloc != host

    def sent(request: Request) -> None:
        if is_outside(request):
            outside.append(request.url)

    def failed(request: Request) -> None:
        if is_outside(request) and "csp" in (request.failure or "").lower() and request.url in outside:
            outside.remove(request.url)

    page.on("request", sent)
    page.on("requestfailed", failed)
    return outside


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_swagger_ui_authorizes_and_creates_a_task(page: Page, service_url: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    outside = _outside_requests(page, service_url)
    user_id = "browser-user"

    page.goto(service_url + "/docs")
    expect(page.locator(".opblock").first).to_be_visible()
    for path in TASK_PATHS:
        expect(page.locator(f'.opblock-summary-path[data-path="{path}"]').first).to_be_visible()
    assert page.locator(".opblock").count() >= 9

    page.get_by_role("button", name="Authorize").first.click()
    page.locator(".modal-ux input").first.fill(make_token(user_id))
    page.locator(".modal-ux button.modal-btn.auth.authorize").click()
    expect(page.locator(".modal-ux button.modal-btn.auth").first).to_have_text("Logout")
    page.locator(".modal-ux button.btn-done").click()

    create = page.locator("#operations-tasks-createTask")
    create.locator(".opblock-summary").click()
    create.get_by_role("button", name="Try it out").click()
    create.locator('input[placeholder="user_id"]').fill(user_id)
    create.locator("textarea.body-param__text").fill(json.dumps({"title": "Made in the browser"}))
    create.get_by_role("button", name="Execute").click()
    status = create.locator(".live-responses-table tr.response .response-col_status").first
    expect(status).to_have_text("201")
    expect(create.locator(".live-responses-table .microlight").first).to_contain_text("Made in the browser")
    page.screenshot(path=str(ARTIFACTS / "swagger-ui.png"), full_page=True)

    assert outside == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_redoc_renders_every_operation(page: Page, service_url: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    outside = _outside_requests(page, service_url)

    page.goto(service_url + "/redoc")
    for summary in ["Create a task in the user's list", "List the user's tasks", "Toggle a task", "Delete a task"]:
        expect(page.locator("h2").filter(has_text=summary).first).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "redoc.png"), full_page=True)

    assert outside == []
