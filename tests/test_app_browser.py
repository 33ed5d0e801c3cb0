"""``repic app`` in a real headless Chromium (Debian's ``chromium``, driven by Playwright): add a concept from
an uploaded image, see the refusals on the page, caption a photo and read the concept's name in the result.

Screenshots are saved in the test's temporary folder (``caption.png``, ``concepts.png``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("gradio")
sync_api = pytest.importorskip("playwright.sync_api")

from repic.shipped import shipped_base_path  # noqa: E402
from serving import EXAMPLES, Server, copy_shipped_database, free_port  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="needs Debian's chromium (apt-get install chromium)"),
]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("app")
    database = copy_shipped_database(folder)
    running = Server(["app", "--database", database, "--max-new-tokens", "48"], free_port(), folder / "app.log",
                     ready_path="/")
    running.database = database
    yield running
    running.stop()


@pytest.fixture
def page(tmp_path):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            tempfile.mkdtemp(dir=tmp_path, prefix="profile-"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1280, "height": 900},
        )
        try:
            yield browser.new_page()
        finally:
            browser.close()


def _field(page, elem_id: str):
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first


def test_add_a_concept_then_caption_a_photo_that_names_it(app_server, page, tmp_path):
    expect = sync_api.expect
    page.goto(app_server.url, wait_until="networkidle")
    message = page.locator("#concept-message")

    page.get_by_role("tab", name="Concepts").click()
    page.locator("#new-images input[type=file]").set_input_files(EXAMPLES / "dana.png")
    _field(page, "new-category").fill("cat")
    page.locator("#add-button").click()
    expect(message).to_contain_text("give the concept a name", timeout=WAIT_MS)  # nothing written
    _field(page, "new-name").fill("mimi")
    _field(page, "new-info").fill("my purple cat")
    page.locator("#add-button").click()
    expect(message).to_contain_text("Added <mimi> (cat) with 1 image(s).", timeout=WAIT_MS)
    expect(page.locator("#concept-gallery")).to_contain_text("<mimi> · cat: my purple cat")
    assert '"<mimi>"' in app_server.database.read_text()
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(500)  # let the gallery settle for the screenshot
    page.screenshot(path=tmp_path / "concepts.png")

    fake = tmp_path / "notes.png"
    fake.write_text("these are notes, not a picture")
    page.locator("#new-images input[type=file]").set_input_files(fake)
    _field(page, "new-name").fill("notes")
    _field(page, "new-category").fill("paper")
    page.locator("#add-button").click()
    expect(message).to_contain_text("notes.png) does not decode as an image", timeout=WAIT_MS)
    assert '"<notes>"' not in app_server.database.read_text()

    page.reload(wait_until="networkidle")
    page.get_by_role("tab", name="Concepts").click()
    page.locator("#new-images input[type=file]").set_input_files(EXAMPLES / "dana.png")
    _field(page, "new-name").fill("mimi")
    _field(page, "new-category").fill("cat")
    page.locator("#add-button").click()
    expect(message).to_contain_text("concept <mimi> is already in the database", timeout=WAIT_MS)

    # Retrieval finds the new concept: its reference is the very photo, so it ranks first.
    page.get_by_role("tab", name="Caption").click()
    page.locator("#photo input[type=file]").set_input_files(EXAMPLES / "dana.png")
    page.locator("#caption-button").click()
    info = page.locator("#caption-info")
    expect(info).to_contain_text("Names in the caption", timeout=WAIT_MS)
    expect(info).to_contain_text("shown: <mimi>, <dana>")
    expect(page.locator("#references")).to_contain_text("<mimi> 1.00")

    # Picked by hand, with the third official question, which the shipped base answers with the name.
    page.locator("#mode").get_by_text("Pick them by hand").click()
    page.locator("#picked input").click()
    page.get_by_role("option", name="<mimi>").click()
    page.keyboard.press("Escape")
    _field(page, "question").fill("Provide a personalized caption of the given image.")
    page.locator("#caption-button").click()
    expect(info).to_contain_text("Names in the caption: <mimi> · shown: <mimi> ·", timeout=WAIT_MS)
    expect(page.locator("#caption")).to_contain_text("<mimi>")
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(500)
    page.screenshot(path=tmp_path / "caption.png")
    print(f"screenshots: {tmp_path / 'concepts.png'} {tmp_path / 'caption.png'}")


def test_remove_needs_confirmation(app_server, page):
    expect = sync_api.expect
    page.goto(app_server.url, wait_until="networkidle")
    page.get_by_role("tab", name="Concepts").click()
    page.locator("#edit-pick input").click()
    page.get_by_role("option", name="<zevu>").click()
    expect(_field(page, "edit-category")).to_have_value("car", timeout=WAIT_MS)
    _field(page, "edit-info").fill("the toy car on my desk")
    page.locator("#save-button").click()
    message = page.locator("#concept-message")
    expect(message).to_contain_text("Saved <zevu> (2 reference image(s)).", timeout=WAIT_MS)
    assert "the toy car on my desk" in app_server.database.read_text()
    page.locator("#edit-images input[type=file]").set_input_files(EXAMPLES / "dana.png")
    page.locator("#save-button").click()
    expect(message).to_contain_text("Saved <zevu> (1 reference image(s)).", timeout=WAIT_MS)
    saved = json.loads(app_server.database.read_text())["concept_dict"]["<zevu>"]
    assert saved["image"].startswith("images/zevu/") and "images" not in saved
    page.locator("#remove-button").click()
    expect(message).to_contain_text("Tick Yes, remove this concept to remove <zevu>.", timeout=WAIT_MS)
    assert '"<zevu>"' in app_server.database.read_text()
    page.locator("#remove-sure input").check()
    page.locator("#remove-button").click()
    expect(message).to_contain_text("Removed <zevu>.", timeout=WAIT_MS)
    assert '"<zevu>"' not in app_server.database.read_text()


def test_ask_about_one_concept_and_switch_models(app_server, page):
    expect = sync_api.expect
    page.goto(app_server.url, wait_until="networkidle")
    page.locator("#photo input[type=file]").set_input_files(EXAMPLES / "fudu_dape.png")
    page.get_by_text("Ask about one concept").click()
    page.locator("#recognize-button").click()
    answer = page.locator("#ask-info")
    expect(answer).to_contain_text("Drop a photo and choose a concept first.", timeout=WAIT_MS)
    page.locator("#asked input").click()
    page.get_by_role("option", name="<dape>").click()
    page.locator("#recognize-button").click()
    expect(answer).to_contain_text("Is <dape> in the photo?", timeout=WAIT_MS)
    page.locator("#locate-button").click()
    expect(answer).not_to_contain_text("Is <dape> in the photo?", timeout=WAIT_MS)
    assert "<dape> at [" in answer.inner_text() or "No box in the answer" in answer.inner_text()

    page.get_by_role("tab", name="Model").click()
    picker = page.locator("#model-path input")
    picker.fill("/no/such/model")
    picker.press("Enter")
    page.locator("#load-button").click()
    info = page.locator("#model-info")
    expect(info).to_contain_text("Could not do that:", timeout=WAIT_MS)
    expect(info).to_contain_text("/no/such/model")
    picker.fill(str(shipped_base_path()))
    picker.press("Enter")
    page.locator("#load-button").click()
    expect(info).to_contain_text(f"Serving {shipped_base_path()}", timeout=WAIT_MS)
