"""``repic app`` in a real headless Chromium (Debian's ``chromium``, driven by Playwright): add a concept from
an uploaded image, see the refusals on the page (never gradio's bare "Error"), caption a photo and read the
concept's name in the result; remove a concept still chosen on the Caption tab; a photo whose header
claims too many pixels refused without the server decoding it; the Model tab loads models only when the
app was started with ``--allow-model-loading``.

Screenshots are saved in the test's temporary folder (``caption.png``, ``concepts.png``, and the out-of-box
run's ``out_of_box_caption.png`` and ``out_of_box_locate.png``).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("gradio")
sync_api = pytest.importorskip("playwright.sync_api")

from PIL import Image  # noqa: E402

from repic.serve.store import ConceptStore  # noqa: E402
from repic.shipped import shipped_base_path  # noqa: E402
from serving import EXAMPLES, Server, copy_shipped_database, free_port  # noqa: E402
from test_app_handlers import sparse_png  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="needs Debian's chromium (apt-get install chromium)"),
]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 60_000


def _start(folder: Path, *flags: str) -> Server:
    database = copy_shipped_database(folder)
    running = Server(["app", "--database", database, "--max-new-tokens", "48", *flags], free_port(),
                     folder / "app.log", ready_path="/")
    running.database = database
    return running


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    running = _start(tmp_path_factory.mktemp("app"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def loading_server(tmp_path_factory):
    running = _start(tmp_path_factory.mktemp("loading-app"), "--allow-model-loading")
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


def _upload_photo(page, path: Path) -> None:
    """Drop ``path`` on the Caption tab's photo and wait until the upload is done (the preview shows)."""
    page.locator("#photo input[type=file]").set_input_files(path)
    sync_api.expect(page.locator("#photo img").first).to_be_attached(timeout=WAIT_MS)


def _choose(page, elem_id: str, tag: str) -> None:
    """Pick ``tag`` in a dropdown, typed into its filter first (the one option left holds still to be clicked)."""
    field = page.locator(f"#{elem_id} input")
    field.click()
    field.fill(tag)
    page.locator(f"#{field.get_attribute('aria-controls')} [role=option][aria-label='{tag}']").click()
    field.press("Escape")
    field.blur()


def _bare_errors(page) -> list[str]:
    """Gradio's own error badges on components and error toasts: none may show."""
    return page.locator('[data-testid="status-tracker"] span.error, .toast-body').all_inner_texts()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


class PeakMemory:
    """The most resident memory process ``pid`` reached while the ``with`` block ran (sampled every 5 ms)."""

    def __init__(self, pid: int):
        self.pid, self.peak_mb, self._done = pid, 0.0, threading.Event()

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak_mb = max(self.peak_mb, _rss_mb(self.pid))
            time.sleep(0.005)

    def __enter__(self):
        self.before_mb = _rss_mb(self.pid)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()


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
    _upload_photo(page, EXAMPLES / "dana.png")
    page.locator("#caption-button").click()
    info = page.locator("#caption-info")
    expect(info).to_contain_text("Names in the caption", timeout=WAIT_MS)
    expect(info).to_contain_text("shown: <mimi>, <dana>")
    expect(page.locator("#references")).to_contain_text("<mimi> 1.00")

    # Picked by hand, with the third official question, which the shipped base answers with the name.
    page.locator("#mode").get_by_text("given: pick them by hand").click()
    _choose(page, "picked", "<mimi>")
    _field(page, "question").fill("Provide a personalized caption of the given image.")
    page.locator("#caption-button").click()
    expect(info).to_contain_text("Names in the caption: <mimi> · shown: <mimi> ·", timeout=WAIT_MS)
    expect(page.locator("#caption")).to_contain_text("<mimi>")
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(500)
    page.screenshot(path=tmp_path / "caption.png")
    assert _bare_errors(page) == []
    print(f"screenshots: {tmp_path / 'concepts.png'} {tmp_path / 'caption.png'}")


def test_remove_needs_confirmation(app_server, page):
    expect = sync_api.expect
    page.goto(app_server.url, wait_until="networkidle")
    page.get_by_role("tab", name="Concepts").click()
    _choose(page, "edit-pick", "<zevu>")
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


def test_ask_about_one_concept(app_server, page):
    expect = sync_api.expect
    page.goto(app_server.url, wait_until="networkidle")
    _upload_photo(page, EXAMPLES / "fudu_dape.png")
    page.get_by_text("Ask about one concept").click()
    page.locator("#recognize-button").click()
    answer = page.locator("#ask-info")
    expect(answer).to_contain_text("Drop a photo and choose a concept first.", timeout=WAIT_MS)
    _choose(page, "asked", "<dape>")
    page.locator("#recognize-button").click()
    expect(answer).to_contain_text("Is <dape> in the photo?", timeout=WAIT_MS)
    page.locator("#locate-button").click()
    expect(answer).not_to_contain_text("Is <dape> in the photo?", timeout=WAIT_MS)
    assert "<dape> at [" in answer.inner_text() or "No box in the answer" in answer.inner_text()
    assert _bare_errors(page) == []


def test_the_model_tab_shows_the_model_and_loads_none_by_default(app_server, page):
    page.goto(app_server.url, wait_until="networkidle")
    page.get_by_role("tab", name="Model").click()
    sync_api.expect(page.locator("#model-info")).to_contain_text("Serving ", timeout=WAIT_MS)
    sync_api.expect(page.locator("#max-tokens")).to_be_visible()
    assert page.locator("#model-path, #base-path, #load-button").count() == 0
    assert "do_load" not in json.dumps(page.request.get(f"{app_server.url}/config").json()["dependencies"])


def test_switch_models_when_loading_is_allowed(loading_server, page, tmp_path):
    expect = sync_api.expect
    page.goto(loading_server.url, wait_until="networkidle")
    page.get_by_role("tab", name="Model").click()
    picker = page.locator("#model-path input")
    info = page.locator("#model-info")
    for refused in ["/no/such/model", str(tmp_path)]:  # nothing there; a folder without a model
        picker.fill(refused)
        picker.press("Enter")
        page.locator("#load-button").click()
        expect(info).to_contain_text(refused, timeout=WAIT_MS)
        expect(info).to_contain_text("Could not do that:")
        assert _bare_errors(page) == [], refused
    picker.fill(str(shipped_base_path()))
    picker.press("Enter")
    page.locator("#load-button").click()
    expect(info).to_contain_text(f"Serving {shipped_base_path()}", timeout=WAIT_MS)
    assert _bare_errors(page) == []


def test_refusals_are_messages_on_the_page(app_server, page, tmp_path):
    expect = sync_api.expect
    page.goto(app_server.url, wait_until="networkidle")
    info = page.locator("#caption-info")
    answer = page.locator("#ask-info")
    page.get_by_text("Ask about one concept").click()
    _choose(page, "asked", "<dape>")
    notes = tmp_path / "notes.png"
    notes.write_text("these are notes, not a picture")
    thin = tmp_path / "thin.png"
    Image.new("RGB", (402, 2), "white").save(thin)
    not_an_image, too_thin = "the photo does not decode as an image", "the photo is 402 x 2 pixels, an aspect ratio of 201"
    # Each answer differs from the one before it in the same place, so each wait sees a new answer.
    for path, button, shown, message in [
        (notes, "#caption-button", info, not_an_image), (notes, "#recognize-button", answer, not_an_image),
        (thin, "#caption-button", info, too_thin), (thin, "#recognize-button", answer, too_thin),
        (notes, "#locate-button", answer, not_an_image), (thin, "#locate-button", answer, too_thin),
    ]:
        _upload_photo(page, path)
        page.locator(button).click()
        expect(shown).to_contain_text(message, timeout=WAIT_MS)
        assert _bare_errors(page) == [], (path.name, button)

    _upload_photo(page, EXAMPLES / "dana.png")
    _field(page, "question").fill("Who is this? <|image_pad|>")
    page.locator("#caption-button").click()
    expect(info).to_contain_text("holds '<|image_pad|>', a control token", timeout=WAIT_MS)
    assert _bare_errors(page) == []


def test_a_photo_over_the_pixel_limit_is_refused_before_it_is_decoded(app_server, page, tmp_path):
    huge = tmp_path / "huge.png"
    huge.write_bytes(sparse_png(8000, 8000))  # 64 megapixels (over the 25 M default) in a few kilobytes
    page.goto(app_server.url, wait_until="networkidle")
    _upload_photo(page, huge)
    info = page.locator("#caption-info")
    with PeakMemory(app_server.process.pid) as memory:
        page.locator("#caption-button").click()
        sync_api.expect(info).to_contain_text("the photo is 8000 x 8000 pixels, more than the limit of 25,000,000",
                                              timeout=WAIT_MS)
    # Decoded, its pixels alone would take 192 MB (RGB); gradio's own decoding took gigabytes for 100 MP.
    assert memory.peak_mb - memory.before_mb < 60, (memory.before_mb, memory.peak_mb)
    assert _bare_errors(page) == []


def test_removing_a_concept_still_chosen_on_the_caption_tab(app_server, page):
    expect = sync_api.expect
    page.goto(app_server.url, wait_until="networkidle")
    page.locator("#mode").get_by_text("given: pick them by hand").click()
    _choose(page, "picked", "<fisi>")
    _choose(page, "picked", "<dana>")
    page.get_by_text("Ask about one concept").click()
    _choose(page, "asked", "<fisi>")
    page.get_by_role("tab", name="Concepts").click()
    _choose(page, "edit-pick", "<fisi>")
    expect(_field(page, "edit-category")).to_have_value("house", timeout=WAIT_MS)
    page.locator("#remove-sure input").check()
    page.locator("#remove-button").click()
    expect(page.locator("#concept-message")).to_contain_text("Removed <fisi>.", timeout=WAIT_MS)
    for elem_id in ["edit-pick", "edit-name", "edit-category", "edit-info"]:
        expect(_field(page, elem_id)).to_have_value("", timeout=WAIT_MS)
    expect(page.locator("#remove-sure input")).not_to_be_checked()

    page.get_by_role("tab", name="Caption").click()
    picked = page.locator("#picked")
    expect(picked).not_to_contain_text("<fisi>", timeout=WAIT_MS)
    expect(picked).to_contain_text("<dana>")
    expect(_field(page, "asked")).to_have_value("")
    field = page.locator("#picked input")
    field.click()
    listed = page.locator(f"#{field.get_attribute('aria-controls')}")
    expect(listed.locator("[aria-label='<gali>']")).to_be_attached(timeout=WAIT_MS)
    assert listed.locator("[aria-label='<fisi>']").count() == 0
    field.press("Escape")
    _upload_photo(page, EXAMPLES / "dana.png")
    page.locator("#caption-button").click()
    expect(page.locator("#caption-info")).to_contain_text("shown: <dana> ·", timeout=WAIT_MS)
    page.locator("#recognize-button").click()
    expect(page.locator("#ask-info")).to_contain_text("Drop a photo and choose a concept first.", timeout=WAIT_MS)
    assert _bare_errors(page) == []


def test_a_concept_removed_elsewhere_gives_a_message(app_server, page):
    expect = sync_api.expect
    store = ConceptStore(app_server.database)
    store.add("lulu", category="cat", images=[Image.open(EXAMPLES / "dana.png")])
    page.goto(app_server.url, wait_until="networkidle")  # the page lists the concept added after the app started
    _upload_photo(page, EXAMPLES / "dana.png")
    page.locator("#mode").get_by_text("given: pick them by hand").click()
    _choose(page, "picked", "<lulu>")
    page.get_by_text("Ask about one concept").click()
    _choose(page, "asked", "<lulu>")
    page.get_by_role("tab", name="Concepts").click()
    _choose(page, "edit-pick", "<lulu>")
    expect(_field(page, "edit-category")).to_have_value("cat", timeout=WAIT_MS)
    store.remove("lulu")  # another client (or `repic db remove`) while this page still lists it
    gone = "<lulu> is no longer in the concept database"

    page.get_by_role("tab", name="Caption").click()
    page.locator("#locate-button").click()
    expect(page.locator("#ask-info")).to_contain_text(gone, timeout=WAIT_MS)
    expect(page.locator("#picked")).not_to_contain_text("<lulu>", timeout=WAIT_MS)
    expect(_field(page, "asked")).to_have_value("")
    page.locator("#caption-button").click()
    expect(page.locator("#caption-info")).to_contain_text("mode 'given' needs the concepts", timeout=WAIT_MS)
    page.get_by_role("tab", name="Concepts").click()
    page.locator("#save-button").click()
    expect(page.locator("#concept-message")).to_contain_text(gone, timeout=WAIT_MS)
    expect(_field(page, "edit-category")).to_have_value("", timeout=WAIT_MS)
    expect(_field(page, "edit-pick")).to_have_value("")
    assert _bare_errors(page) == []


def test_a_fresh_folder_gets_captions_that_name_the_concept_and_a_box(tmp_path, page):
    """``repic app`` as a new user meets it: a fresh folder, nothing but the package. With no demo run and no
    arguments it opens the tiny RePIC model shipped in the package and a copy of the shipped held-out
    concepts, retrieving with the shipped base's tower: a caption of a held-out world scene names the
    concept it shows, and "Where is it?" draws a box (screenshots ``out_of_box_caption.png``,
    ``out_of_box_locate.png``)."""
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    app = Server(["app"], free_port(), tmp_path / "app.log", ready_path="/", cwd=fresh)
    try:
        log = app.log.read_text()
        assert "tiny RePIC model shipped with repic" in log and "retrieval: tower" in log, log
        page.goto(app.url, wait_until="networkidle")
        _upload_photo(page, EXAMPLES / "dana.png")
        page.locator("#caption-button").click()
        info = page.locator("#caption-info")
        sync_api.expect(info).to_contain_text("Names in the caption:", timeout=2 * WAIT_MS)
        assert re.search(r"Names in the caption: <dana>", info.inner_text()), info.inner_text()
        assert "<dana>" in page.locator("#caption").inner_text()
        page.screenshot(path=tmp_path / "out_of_box_caption.png", full_page=True)

        page.get_by_text("Ask about one concept").click()
        _choose(page, "asked", "<dana>")
        page.locator("#locate-button").click()
        answer = page.locator("#ask-info")
        sync_api.expect(answer).to_contain_text("<dana> at [", timeout=WAIT_MS)
        page.screenshot(path=tmp_path / "out_of_box_locate.png", full_page=True)
        assert (fresh / "repic-concepts" / "database.json").is_file()  # the copy the app edits, in the folder
    finally:
        app.stop()
