"""The app's handlers called directly, over a stand-in service (no model): model loading is opt-in, every
failure is a message on the page (unexpected ones logged), photos are checked before their pixels are
decoded, and a removed concept leaves every list it was chosen in.
"""

from __future__ import annotations

import io
import logging
import struct
import zlib
from pathlib import Path

import pytest

pytest.importorskip("gradio")

from PIL import Image  # noqa: E402

from repic.app.ui import PICK, RETRIEVE, UNEXPECTED, build_app  # noqa: E402
from repic.serve.service import ServiceSettings  # noqa: E402
from repic.serve.store import ConceptStore  # noqa: E402
from repic.serve.uploads import ImageLimits, ServiceError  # noqa: E402
from serving import EXAMPLES, copy_shipped_database  # noqa: E402


def sparse_png(width: int, height: int) -> bytes:
    """A valid all-black 1-bit PNG of ``width`` x ``height``: a few kilobytes that decode to far more pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then the row's bits
    packer = zlib.compressobj(9)
    pixels = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


class StandIn:
    """What ``build_app`` uses of a ``CaptionService``, answering without a model; ``fail`` makes it raise."""

    def __init__(self, database: Path, limits: ImageLimits | None = None):
        self.store = ConceptStore(database)
        self.settings = ServiceSettings(images=limits or ImageLimits())
        self.calls: list[tuple[str, object]] = []
        self.fail: Exception | None = None

    def model_info(self):
        return {"source": "tiny-model", "mode": "full"}

    def generation(self, tokens, *, sample=False, temperature=1.0):
        return {"max_new_tokens": tokens}

    def _answer(self, what, image, **extra):
        self.calls.append((what, image))
        if self.fail is not None:
            raise self.fail
        return extra

    def caption(self, image, *, mode, concepts, question, top_k, generation):
        return self._answer("caption", image, caption="<dana> sleeps.", names=["<dana>"], concepts_shown=["<dana>"],
                            retrieved=[], timings={"total_s": 0.1})

    def recognize(self, image, tag):
        return self._answer("recognize", image, concept=tag, present=True, raw="Yes")

    def locate(self, image, tag):
        return self._answer("locate", image, concept=tag, box=[1, 1, 5, 5], raw="[1, 1, 5, 5]")

    def load_model(self, path, *, base=None):
        return self._answer("load", path, source=path, mode="full")


@pytest.fixture
def service(tmp_path):
    return StandIn(copy_shipped_database(tmp_path))


def handlers(app) -> dict:
    return {fn.name: fn.fn for fn in app.fns.values()}


def photo(path: Path) -> dict:
    """A photo as the page sends it to a handler (gradio's file data, not preprocessed)."""
    return {"path": str(path), "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}


def caption_inputs(image, *, how=RETRIEVE, hand=None, question="Describe the image.", asked=None):
    return image, how, 2, hand or [], question, 48, False, 1.0, asked


def test_model_loading_is_opt_in(service):
    for allowed in (False, True):
        app = build_app(service, allow_model_loading=allowed)
        config = app.get_config_file()
        ids = {c["props"].get("elem_id") for c in config["components"]}
        endpoints = {d.get("api_name") for d in config["dependencies"]}
        info = next(c["props"]["value"] for c in config["components"] if c["props"].get("elem_id") == "model-info")
        assert "Serving **tiny-model** (full)" in info and {"max-tokens", "sample"} <= ids
        # Off: no path box, no button, and no endpoint a client could call instead.
        assert ({"model-path", "base-path", "load-button"} <= ids) is allowed
        assert ("do_load" in endpoints) is allowed
    assert handlers(app)["do_load"]("/models/other", "") == "Serving **/models/other** (full)"


def test_every_handler_turns_failures_into_a_message(service, tmp_path, caplog):
    app = build_app(service, allow_model_loading=True)
    run = handlers(app)
    image = photo(EXAMPLES / "dana.png")
    asked = [image, "<dana>", []]
    service.fail = ServiceError(503, "the server is busy")
    assert run["do_caption"](*caption_inputs(image))[1] == "**Could not do that:** the server is busy"
    assert run["do_recognize"](*asked)[0] == "**Could not do that:** the server is busy"
    assert run["do_locate"](*asked)[:2] == ("**Could not do that:** the server is busy", None)
    assert run["do_load"]("/no/such/model", "") == "**Could not do that:** the server is busy"

    service.fail = RuntimeError("CUDA out of memory at 0x7f")  # nothing the user can fix: logged, not shown
    with caplog.at_level(logging.ERROR, logger="repic.app"):
        outputs = [run["do_caption"](*caption_inputs(image))[1], run["do_recognize"](*asked)[0],
                   run["do_locate"](*asked)[0], run["do_load"]("/no/such/model", "")]
    assert outputs == [UNEXPECTED] * 4
    failed = [r for r in caplog.records if r.name == "repic.app"]
    assert [r.exc_info[1] for r in failed] == [service.fail] * 4
    assert all("0x7f" not in text for text in outputs)

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    for method in ("add", "update", "remove", "get"):
        setattr(service.store, method, broken)
    now = [[], None, "<dana>"]
    added = run["do_add"]([photo(EXAMPLES / "dana.png")], "newone", "cat", "", *now)
    saved = run["do_save"]("<dana>", "Dana", "dog", "", None, *now)
    removed = run["do_remove"]("<dana>", True, *now)
    picked = run["do_pick"]("<dana>", *now)
    assert [added[0], saved[0], removed[0], picked[0]] == [UNEXPECTED] * 4
    assert "<dana>" in added[4]["choices"]  # the lists are as the database holds them


def test_photos_are_checked_before_their_pixels_are_decoded(tmp_path):
    service = StandIn(copy_shipped_database(tmp_path), ImageLimits(max_bytes=200_000, max_pixels=1_000_000))
    run = handlers(build_app(service))
    huge = tmp_path / "huge.png"
    huge.write_bytes(sparse_png(8000, 8000))  # 64 megapixels in a few kilobytes
    assert huge.stat().st_size < 20_000
    notes = tmp_path / "notes.png"
    notes.write_text("these are notes, not a picture")
    thin = tmp_path / "thin.png"
    Image.new("RGB", (402, 2)).save(thin)
    heavy = tmp_path / "heavy.bmp"
    Image.new("RGB", (300, 300)).save(heavy)  # 270 kB: within the pixels, over the bytes
    refusals = {
        huge: "the photo is 8000 x 8000 pixels, more than the limit of 1,000,000",
        notes: "the photo does not decode as an image",
        thin: "the photo is 402 x 2 pixels, an aspect ratio of 201",
        heavy: "the photo is larger than the limit of 200,000 bytes",
    }
    for path, message in refusals.items():
        assert message in run["do_caption"](*caption_inputs(photo(path)))[1]
        assert message in run["do_recognize"](photo(path), "<dana>", [])[0]
        assert message in run["do_locate"](photo(path), "<dana>", [])[0]
    question = "Who is this? <|image_pad|>"
    assert "holds '&lt;|image_pad|&gt;', a control token" in run["do_caption"](
        *caption_inputs(photo(EXAMPLES / "dana.png"), question=question))[1]
    assert service.calls == []  # nothing refused reached the model

    small = io.BytesIO()
    Image.new("RGB", (40, 30), "purple").save(small, format="PNG")
    (tmp_path / "ok.png").write_bytes(small.getvalue())
    highlighted, info, *_ = run["do_caption"](*caption_inputs(photo(tmp_path / "ok.png")))
    assert highlighted == [("<dana>", "<dana>"), (" sleeps.", None)] and "Names in the caption" in info
    assert service.calls[0][1].size == (40, 30) and service.calls[0][1].mode == "RGB"


def test_a_removed_concept_leaves_every_list_and_the_edit_form(service):
    run = handlers(build_app(service))
    message, _, picked, asked, chosen, sure, *form = run["do_remove"]("<fudu>", True, ["<fudu>", "<dana>"],
                                                                      "<fudu>", "<fudu>")
    assert message == "Removed **&lt;fudu&gt;**."
    for listed in (picked, asked, chosen):
        assert "<fudu>" not in listed["choices"] and "<dana>" in listed["choices"]
    assert (picked["value"], asked["value"], chosen["value"]) == (["<dana>"], None, None)
    assert (sure, form) == (False, ["", "", "", None])

    # A list that did not hold it keeps the user's value (no "value" sent).
    message, _, picked, asked, chosen, *_ = run["do_remove"]("<dape>", True, ["<dana>"], "<gali>", "<dape>")
    assert "value" not in picked and "value" not in asked and chosen["value"] is None


def test_a_concept_removed_by_another_client_gives_a_message(service):
    run = handlers(build_app(service))
    image = photo(EXAMPLES / "dana.png")
    service.store.remove("<fudu>")  # another page or process, after this page listed it
    gone = "**&lt;fudu&gt; is no longer in the concept database** (removed meanwhile); taken off the lists."

    _, info, _, picked, asked = run["do_caption"](*caption_inputs(image, how=PICK, hand=["<fudu>", "<dana>"],
                                                                  asked="<fudu>"))
    assert info == gone and picked["value"] == ["<dana>"] and asked["value"] is None
    answer, picked, asked = run["do_recognize"](image, "<fudu>", ["<fudu>"])
    assert answer == gone and picked["value"] == [] and asked["value"] is None
    assert run["do_locate"](image, "<fudu>", [])[:2] == (gone, None)
    # Retrieval ignores the hand-picked list: a stale tag there is dropped, the caption still made.
    _, info, _, picked, _ = run["do_caption"](*caption_inputs(image, hand=["<fudu>"]))
    assert info.startswith("Names in the caption") and picked["value"] == []
    assert [what for what, _ in service.calls] == ["caption"]

    for outputs in (run["do_pick"]("<fudu>", [], None, "<fudu>"),
                    run["do_save"]("<fudu>", "Fudu", "cat", "", None, [], None, "<fudu>")):
        assert outputs[0] == gone and outputs[4]["value"] is None and "<fudu>" not in outputs[4]["choices"]
        assert list(outputs[5:8]) == ["", "", ""]
    removed = run["do_remove"]("<fudu>", True, [], None, "<fudu>")
    assert removed[0].startswith("**Could not do that:**") and removed[4]["value"] is None
    refreshed = run["do_refresh"](["<fudu>"], "<dana>", None)
    assert refreshed[2]["value"] == [] and "value" not in refreshed[3]
