"""The artists' page in a real headless browser (Debian's chromium driven by Playwright), against a
real uvicorn server: sign in, see the API's numbers, download the CSV, revoke a grant."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from foundry.db import utcnow
from foundry.ledger.periods import period_of
from tests.generation.test_served import free_port, served_env
from tests.payouts.test_statements import artists  # noqa: F401 -- a fixture, used by name

pytestmark = pytest.mark.slow
SCREENSHOTS = Path(os.environ.get("FOUNDRY_SCREENSHOT_DIR", "")) if os.environ.get("FOUNDRY_SCREENSHOT_DIR") else None


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser test but chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed here")
    return path


@pytest.fixture
def server(migrated, served_model, tmp_path):
    port = free_port()
    log = (tmp_path / "api.log").open("ab")
    process = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--port",
                                str(port)], env=served_env(migrated), stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/v1/health").status_code == 200:
                break
        except httpx.TransportError:
            import time

            time.sleep(0.1)
    yield base
    process.terminate()
    process.wait(timeout=20)


def test_artist_signs_in_sees_the_api_numbers_downloads_csv_and_revokes(server, customer, served_model, artists,  # noqa: F811
                                                                        tmp_path):
    from playwright.sync_api import sync_playwright

    period = period_of(utcnow())
    artist_id, headers = artists["Artist 0"]
    with httpx.Client(base_url=server, timeout=120) as http:
        for seed in (1, 2, 3):
            assert http.post("/v1/generations", headers=customer.headers, json={
                "model_id": str(served_model), "prompt": "red blocks", "steps": 2, "seed": seed}).status_code == 200
        api = http.get(f"/v1/me/statements/{period}", headers=headers).json()
        api_csv = http.get(f"/v1/me/statements/{period}.csv", headers=headers).content
    key = headers["Authorization"].removeprefix("Bearer ")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        page = browser.new_page(accept_downloads=True, viewport={"width": 1200, "height": 1600})
        page.goto(f"{server}/artist")
        assert page.url.endswith("/artist/sign-in")
        page.fill("#api_key", "fdy_wrong_key")
        page.click("#sign-in")
        assert "not a valid artist key" in page.inner_text("#message")
        page.fill("#api_key", customer.key)  # a customer key is not an artist key
        page.click("#sign-in")
        assert "not a valid artist key" in page.inner_text("#message")
        page.fill("#api_key", key)
        page.click("#sign-in")
        page.wait_for_url(f"{server}/artist")
        for element, field in (("#earned", "earned"), ("#pro-rata", "pro_rata"), ("#payable", "payable"),
                               ("#carried-out", "carried_out"), ("#outputs", "outputs")):
            assert int(page.inner_text(element)) == api[field], field
        assert page.locator("#output-list tr").count() == 1 + len(api["outputs_page"]["items"])
        assert page.locator(".asset img").count() == len(api["by_asset"]) == 3
        assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        assert page.locator("#chart rect").count() == 1
        if SCREENSHOTS:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "artist-statement.png"), full_page=True)

        with page.expect_download() as download:
            page.click("#csv")
        assert Path(download.value.path()).read_bytes() == api_csv

        page.select_option("#revoke-asset", index=0)
        page.fill("#revoke-reason", "withdrawn from AI use")
        page.click("#revoke")
        page.wait_for_load_state()
        assert page.locator("#notice").count() == 1, page.content()[:3000]
        assert "revoked 1 grant(s); 1 model(s) affected" in page.inner_text("#notice")
        assert "withdrawn from AI use" in page.inner_text("#withdrawals")
        if SCREENSHOTS:
            page.screenshot(path=str(SCREENSHOTS / "artist-after-revocation.png"), full_page=True)

        # named styles: not allowed until the artist says so, on this page
        assert "not allowed" in page.inner_text("#style-consent")
        page.click("#style-consent-toggle")
        page.wait_for_load_state()
        assert "Named styles allowed." in page.inner_text("#notice")
        assert "in the style of" in page.inner_text("#style-consent")
        assert page.inner_text("#style-consent-toggle") == "Stop allowing named styles"

        # a forged form without the session's CSRF token is refused
        forged = page.request.post(f"{server}/artist/withdrawals", form={
            "csrf_token": "forged", "use": "generation", "reason": "x"})
        assert forged.status == 403
        browser.close()

    with httpx.Client(base_url=server) as http:
        withdrawals = http.get("/v1/me/withdrawals", headers=headers).json()
    assert len(withdrawals) == 1 and withdrawals[0]["reason"] == "withdrawn from AI use"
    assert withdrawals[0]["contributor_id"] == str(artist_id)
