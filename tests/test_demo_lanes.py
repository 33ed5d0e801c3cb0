"""The demo's second lane (``repic.world.demo.lanes``): stages in a real spawned process on the same run
folder, their records and return value back in the parent, progress lines said as they come, errors raised
again in the parent."""

from __future__ import annotations

import json

import pytest

from repic.errors import RepicError
from repic.world.demo.lanes import SecondLane
from repic.world.demo.stages import StageBook

# The lane's work functions live at module level: the spawned process imports them by name.


def write_two_stages(book: StageBook, text: str) -> str:
    for name in ("first", "second"):
        output = book.folder / name
        book.run(name, {"text": text}, output, lambda o=output: (o.mkdir(), (o / "made.txt").write_text(text)))
    book.say("both written")
    return text.upper()


def refuse(book: StageBook) -> None:
    book.say("about to refuse")
    raise RepicError("the SFT samples file is damaged; run `repic data build` again")


def crash(book: StageBook) -> None:
    raise ValueError("a bug in a stage")


def run_lane(tmp_path, work, *args):
    lines: list[str] = []
    lane = SecondLane(tmp_path, work, args, threads=1, say=lines.append).start()
    return lane, lines


@pytest.mark.slow
def test_stages_of_the_lane_are_recorded_in_the_folder_and_returned_with_their_value(tmp_path):
    lane, lines = run_lane(tmp_path, write_two_stages, "hello")
    records, value = lane.join()
    assert value == "HELLO" and list(records) == ["first", "second"]
    assert (tmp_path / "second" / "made.txt").read_text() == "hello"
    saved = json.loads((tmp_path / "stages" / "first.json").read_text())
    assert saved["token"] == records["first"].token and saved["key"] == {"text": "hello"}
    assert lines == ["first: started", lines[1], "second: started", lines[3], "both written"]
    assert lines[1].startswith("first: done in ") and lines[3].startswith("second: done in ")
    # the parent's book finds the lane's stages finished: nothing runs twice
    book = StageBook(tmp_path, say=lines.append)
    assert book.run("first", {"text": "hello"}, tmp_path / "first", lambda: pytest.fail("ran again")).reused


@pytest.mark.slow
def test_an_error_in_the_lane_is_raised_in_the_parent_with_its_message(tmp_path):
    lane, lines = run_lane(tmp_path, refuse)
    with pytest.raises(RepicError, match=r"damaged; run `repic data build` again"):
        lane.join()
    assert lines == ["about to refuse"]
    assert lane.process.exitcode == 0  # the lane ended by itself, after saying why


@pytest.mark.slow
def test_a_crash_in_the_lane_comes_back_with_its_traceback(tmp_path):
    lane, _ = run_lane(tmp_path, crash)
    with pytest.raises(RuntimeError, match=r"(?s)second lane failed:.*ValueError: a bug in a stage"):
        lane.join()


@pytest.mark.slow
def test_stopping_the_lane_ends_its_process(tmp_path):
    lane, _ = run_lane(tmp_path, write_two_stages, "x")
    lane.stop(wait=False)
    assert not lane.process.is_alive()
