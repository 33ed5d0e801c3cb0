"""The demo evaluation scores predictions files as ``repic eval`` does (``score_model``), and its per-query
outcomes give back, query by query, the numbers ``score_model`` reports."""

from __future__ import annotations

import pytest
from PIL import Image

from repic.atomic import atomic_write_jsonl
from repic.concepts.database import ConceptDatabase
from repic.errors import RepicError
from repic.evaluate import F1, RATE
from repic.evaluate.models import CAPTION_EVALUATIONS, query_outcomes, score_model
from repic.records import Concept


def caption(concepts: list[str], prediction: str, offered: list[str] | None = None) -> dict:
    return {
        "image": "q.png",
        "task": "ict_multi" if len(concepts) > 1 else "ict",
        "concepts": concepts,
        "prompt_concepts": offered or concepts,
        "prediction": prediction,
        "question": "Give a caption of the image.",
    }


def answer(task: str, prediction: str, solution) -> dict:
    return {"image": "q.png", "task": task, "concepts": ["<bo>"], "prediction": prediction, "solution": solution}


def three_dogs(folder) -> ConceptDatabase:
    """<bo>, <kim> (display name "Kim") and <rex>, each with a reference image in ``folder``."""
    database = ConceptDatabase()
    for tag, name in (("bo", "bo"), ("kim", "Kim"), ("rex", "rex")):
        image = folder / f"{tag}.png"
        Image.new("RGB", (8, 8), "white").save(image)
        database.add(Concept(tag, name, "dog", images=[image]), store="reference")
    return database


@pytest.fixture
def folder(tmp_path):
    database = three_dogs(tmp_path)
    files = {
        "single": [caption(["<bo>"], "<bo> sleeps."), caption(["<kim>"], "Kim and <bo>."), caption(["<rex>"], "A dog.")],
        "two": [
            caption(["<bo>", "<kim>"], "<bo> and Kim play."),
            caption(["<kim>", "<rex>"], "<bo> waves at <rex>."),
            caption(["<bo>", "<rex>"], "<bo> and <rex> run."),
        ],
        "four": [caption(["<bo>", "<kim>", "<rex>", "<ann>"], "<bo>, <kim> and <rex>.")],
        "single_retrieval": [
            caption(["<bo>"], "<bo> and <rex>.", ["<bo>", "<rex>"]),
            caption(["<kim>"], "kim alone.", ["<kim>", "<bo>"]),
            caption(["<rex>"], "<rex>.", ["<rex>", "<kim>"]),
        ],
        "two_retrieval": [
            caption(["<bo>", "<kim>"], "<bo> alone.", ["<bo>", "<rex>"]),
            caption(["<kim>", "<rex>"], "Kim, <rex> and <bo>.", ["<kim>", "<bo>"]),
        ],
        "oct": [answer("oct", "Yes.", "yes"), answer("oct", "no", "yes"), answer("oct", "No.", "no")],
        "vlt": [answer("vlt", "[0, 0, 10, 10]", [0, 0, 10, 10]), answer("vlt", "[0, 0, 10, 10]", [5, 0, 15, 10])],
    }
    for key, rows in files.items():
        atomic_write_jsonl(tmp_path / f"{key}.jsonl", rows)
    return tmp_path, database


def test_each_outcome_gives_the_number_score_model_reports(folder):
    out, database = folder
    result = score_model(out, label="m", description="", database=database)
    outcomes = query_outcomes(out, database)
    expected = {"oct": result.recognition.accuracy, "vlt": result.localization.accuracy}
    for key, scores in result.captions.items():
        expected[f"{key}.official"] = scores.official.f1
        expected[f"{key}.strict"] = scores.strict.f1
        if scores.absent_named is not None:
            expected[f"{key}.absent_named"] = scores.absent_named.rate
    assert {key: outcomes[key].value() for key in outcomes} == expected
    # absent names are counted only where a reference shown was not in the image
    assert sorted(key for key in outcomes if key.endswith("absent_named")) == [
        "single_retrieval.absent_named", "two_retrieval.absent_named",
    ]
    assert {f"{key}.{mode}" for key in CAPTION_EVALUATIONS for mode in ("official", "strict")} <= set(outcomes)
    # one query per row of each file; F1 kind for names, rates for the rest
    assert outcomes["two.official"].kind == F1 and outcomes["two.official"].counts.shape == (3, 3)
    assert outcomes["oct"].kind == RATE and outcomes["oct"].counts.tolist() == [[1, 1], [0, 1], [1, 1]]
    assert outcomes["vlt"].counts.tolist() == [[1, 1], [0, 1]]  # IoU 1, then 50 / 150
    # single_retrieval: <rex> offered and named (a hit); <bo> offered, not named; <kim> offered, not named
    assert outcomes["single_retrieval.absent_named"].counts.tolist() == [[1, 1], [0, 1], [0, 1]]
    # two, strict ("Kim" is <kim>'s display name): row 1 both correct; row 2 <kim> MISS (<bo> named), <rex>
    # correct; row 3 both correct -> (correct, miss, total) per row
    assert outcomes["two.strict"].counts.tolist() == [[2, 0, 2], [1, 1, 2], [2, 0, 2]]


def test_a_file_without_the_rows_it_should_hold_is_an_error(folder):
    out, database = folder
    atomic_write_jsonl(out / "vlt.jsonl", [answer("oct", "Yes.", "yes")])
    with pytest.raises(RepicError, match="holds no VLT rows; evaluate the model again"):
        query_outcomes(out, database)


def test_score_model_scores_each_file_in_both_modes_with_display_names_and_counts_absent_names(tmp_path):
    database = three_dogs(tmp_path)
    files = {
        "two": [caption(["<bo>", "<kim>"], "<bo> and Kim play."), caption(["<kim>", "<rex>"], "<bo> waves at <rex>.")],
        "single": [caption(["<bo>"], "<bo> sleeps.")],
        "four": [caption(["<bo>", "<kim>", "<rex>", "<ann>"], "Nobody.")],
        "single_retrieval": [caption(["<bo>"], "<bo> and <rex>.", ["<bo>", "<rex>"])],
        "two_retrieval": [caption(["<bo>", "<kim>"], "<bo> alone.", ["<bo>", "<rex>"])],
        "oct": [answer("oct", "Yes.", "yes"), answer("oct", "no", "yes")],
        "vlt": [answer("vlt", "[0, 0, 10, 10]", [0, 0, 10, 10])],
    }
    for key, rows in files.items():
        atomic_write_jsonl(tmp_path / f"{key}.jsonl", rows)
    result = score_model(tmp_path, label="m", description="", database=database)
    two = result.captions["two"]
    # official (two-concept script, case-sensitive tokens): "Kim" is not "kim"; row 1 <bo> correct, <kim> none;
    # row 2 <rex> correct, <kim> MISS (<bo> is named) -> correct 2, MISS 1 of 4: P 2/3, R 1/2, F1 4/7
    assert (two.official.correct, two.official.miss, two.official.total) == (2, 1, 4)
    assert two.official.f1 == pytest.approx(4 / 7)
    # strict: the display name "Kim" names <kim> -> correct 3, MISS 1: P = R = F1 = 3/4
    assert (two.strict.correct, two.strict.miss, two.strict.f1) == (3, 1, 0.75)
    assert two.absent_named is None  # every reference shown was in the image
    absent = result.captions["single_retrieval"].absent_named
    assert (absent.hits, absent.total) == (1, 1)  # <rex> was offered, is not in the image, and is named
    assert result.captions["two_retrieval"].absent_named.hits == 0  # <rex> offered but not named
    assert result.captions["four"].strict.none == 4  # <ann> is in no database: still a concept to find
    assert (result.recognition.accuracy, result.localization.accuracy) == (0.5, 1.0)
