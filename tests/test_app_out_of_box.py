"""``repic app`` as a new user meets it: a fresh folder, nothing but the package, in headless Chromium.

With no demo run and no arguments, the app opens the tiny RePIC model shipped in the package and a copy
of the shipped held-out concepts, retrieving with the shipped base's tower. A caption of a held-out world
scene must name the concept it shows, and "Where is it?" must draw a box. Screenshots are saved in the
test's folder (``out_of_box_caption.png``, ``out_of_box_locate.png``).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("gradio")
sync_api = pytest.importorskip("playwright.sync_api")

from serving import EXAMPLES, Server, free_port  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="needs Debian's chromium (apt-get install chromium)"),
]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 90_000


def test_a_fresh_folder_gets_captions_that_name_the_concept_and_a_box(tmp_path):
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    app = Server(["app"], free_port(), tmp_path / "app.log", ready_path="/", cwd=fresh)
    try:
        log = app.log.read_text()
        assert "tiny RePIC model shipped with repic" in log and "retrieval: tower" in log, log
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch_persistent_context(
                tempfile.mkdtemp(dir=tmp_path, prefix="profile-"), executable_path=CHROMIUM, headless=True,
                args=CHROMIUM_FLAGS, viewport={"width": 1280, "height": 1100},
            )
            try:
                page = browser.new_page()
                page.goto(app.url, wait_until="networkidle")
                page.locator("#photo input[type=file]").set_input_files(EXAMPLES / "dana.png")
                page.locator("#caption-button").click()
                info = page.locator("#caption-info")
                sync_api.expect(info).to_contain_text("Names in the caption:", timeout=WAIT_MS)
                assert re.search(r"Names in the caption: <dana>", info.inner_text()), info.inner_text()
                assert "<dana>" in page.locator("#caption").inner_text()
                page.screenshot(path=tmp_path / "out_of_box_caption.png", full_page=True)

                page.get_by_text("Ask about one concept").click()
                page.locator("#asked input").fill("<dana>")
                page.keyboard.press("Enter")
                page.locator("#locate-button").click()
                answer = page.locator("#ask-info")
                sync_api.expect(answer).to_contain_text("<dana> at [", timeout=WAIT_MS)
                page.screenshot(path=tmp_path / "out_of_box_locate.png", full_page=True)
            finally:
                browser.close()
        assert (fresh / "repic-concepts" / "database.json").is_file()  # the copy the app edits, in the folder
    finally:
        app.stop()
