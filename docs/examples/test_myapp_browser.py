"""A browser test of myapp.py: the JavaScript client in headless Chromium (see the testing guide)."""

import os

import pytest
from myapp import app

from wsroute.testing import serve

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")  # any Chromium; Playwright's own too
HAVE_CHROMIUM = os.path.exists(CHROMIUM)


async def test_the_browser_client_talks_to_the_app() -> None:
    playwright = pytest.importorskip("playwright.async_api")
    if not HAVE_CHROMIUM:
        pytest.skip(f"no Chromium at {CHROMIUM}")
    async with serve(app) as url, playwright.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await browser.new_page()
        await page.goto(f"http://{url}/asyncapi")  # any page of the app's origin
        # The page imports the client the app serves, joins a room and says hi.
        heard = await page.evaluate(
            """async () => {
                const { MultiplexWebSocket } = await import("/wsroute/multiplex.js");
                const room = new MultiplexWebSocket("/rooms/a?user=ann");
                const message = new Promise((resolve) => { room.onmessage = (e) => resolve(e.data); });
                room.send("hi");  // buffered until the topic is open
                return await message;
            }"""
        )
        assert heard == "ann: hi"
        await browser.close()
