"""The strict scorer's edge rules: hyphens join words, empty tags and repeated concepts make a row malformed."""

from __future__ import annotations

import json

import pytest

from repic.evaluate import load_predictions
from repic.evaluate.metrics import named_concepts


@pytest.mark.parametrize(
    ("caption", "named"),
    [
        ("An x-ray image of a hand.", []),
        ("A ray-like shape.", []),
        ("<ray>-shaped clouds over <bo>.", ["<ray>", "<bo>"]),
        ("Ray and bo - together.", ["<ray>", "<bo>"]),
        ("The x-<ray> scan.", ["<ray>"]),
    ],
)
def test_a_hyphen_glues_a_bare_name_to_its_word(caption, named):
    assert named_concepts(caption, ["<ray>", "<bo>"]) == named


def test_multi_word_names_may_still_be_hyphenated():
    assert named_concepts("Here is spider-man.", ["<spider man>"]) == ["<spider man>"]


@pytest.mark.parametrize(
    ("concepts", "reason"),
    [(["<>"], "empty tag '<>'"), (["<bo>", " "], "empty tag"), (["<bo>", "bo"], "lists <bo>, bo more than once")],
)
def test_rows_with_empty_or_repeated_concepts_are_malformed(tmp_path, concepts, reason):
    path = tmp_path / "captions.json"
    rows = [["q.jpg", concepts, "A photo of <bo>.", "q"], ["q.jpg", ["<bo>"], "A photo of <bo>.", "q"]]
    path.write_text(json.dumps(rows), encoding="utf-8")
    loaded = load_predictions(path)
    assert len(loaded.captions) == 1
    assert [row.row for row in loaded.skipped] == [1] and reason in loaded.skipped[0].reason
