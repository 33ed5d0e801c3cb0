"""``repic.bench.score``: each scoring rule on a hand-written benchmark folder and predictions, numbers by hand."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest

from repic.bench import score as score_module
from repic.bench.rows import BenchRow, Manifest, write_manifest, write_rows
from repic.bench.run import choice_permutation
from repic.bench.score import RESULTS_JSON, abstains, open_match, parse_choice, score_benchmark, write_results
from repic.errors import RepicError

DATABASE_TAGS = ("<bo>", "<kim>", "<rex>", "<zed>")


def rec(row_id: str, answer: str, negative: str | None = None) -> BenchRow:
    return BenchRow(row_id, "recognition", "Is <bo> in the image?", answer, image="images/a.png", concepts=["<bo>"],
                    negative=negative)


ROWS = [
    # recognition: 4 positives, 5 negatives (2 same category, 2 other, 1 unknown), 1 never answered
    rec("p1", "yes"), rec("p2", "yes"), rec("p3", "yes"), rec("p4", "yes"), rec("p5", "yes"),
    rec("n1", "no", "same_category"), rec("n2", "no", "same_category"), rec("n3", "no", "other_category"),
    rec("n4", "no"), rec("n5", "no", "other_category"),
    # caption
    BenchRow("c1", "caption", "", [], image="images/a.png", concepts=["<bo>"]),
    BenchRow("c2", "caption", "", [], image="images/a.png", concepts=["<kim>"]),
    BenchRow("c3", "caption", "", [], image="images/a.png", concepts=["<rex>"]),
    BenchRow("c4", "caption", "", [], image="images/a.png", concepts=["<bo>"]),
    BenchRow("c5", "caption", "", [], image="images/a.png", concepts=[]),
    # choice (answer: the right option's index in the source's order)
    BenchRow("q1", "choice", "What is <bo>?", 0, options=["Duck", "Crocodile"]),
    BenchRow("q2", "choice", "Colour?", 0, options=["Red", "Blue"]),
    BenchRow("q3", "choice", "Which?", 2, options=["Cat", "Dog", "Cow"]),
    BenchRow("q4", "choice", "Is it?", 0, options=["Yes", "No"]),
    BenchRow("q5", "choice", "Where?", 0, options=["Up", "Down"]),
    # open
    BenchRow("o1", "open", "What is it?", "cat"),
    BenchRow("o2", "open", "Which letter?", "A"),
    BenchRow("o3", "open", "Which letter?", "A"),
    BenchRow("o4", "open", "Colour?", "red"),
    BenchRow("o5", "open", "Colour?", "blue"),
    BenchRow("o6", "open", "Which letter?", "A"),
]

PREDICTIONS = [
    {"id": "p1", "kind": "recognition", "answer": "Yes."},
    {"id": "p2", "kind": "recognition", "answer": "No"},
    {"id": "p3", "kind": "recognition", "answer": "I don't know."},  # abstention: unclear, wrong
    {"id": "p4", "kind": "recognition", "answer": "Maybe"},  # unclear, wrong
    {"id": "n1", "kind": "recognition", "answer": "no"},
    {"id": "n2", "kind": "recognition", "answer": "yes"},
    {"id": "n3", "kind": "recognition", "answer": "No, it is not."},
    {"id": "n4", "kind": "recognition", "answer": "I know it: no"},  # whole words: "know" is not "no"
    {"id": "n5", "kind": "recognition", "answer": None, "skipped": "query image images/a.png does not exist"},
    {"id": "c1", "kind": "caption", "answer": "<bo> sleeps on the sofa."},
    {"id": "c2", "kind": "caption", "answer": "<rex> waves."},
    {"id": "c3", "kind": "caption", "answer": "I'm not sure who this is."},
    {"id": "c4", "kind": "caption", "answer": "<Bo>'s ball and <zed>."},
    {"id": "c5", "kind": "caption", "answer": "<kim> is here."},
    {"id": "q1", "kind": "choice", "answer": "B", "permutation": [1, 0]},  # B showed Duck: right
    {"id": "q2", "kind": "choice", "answer": "The answer is A.", "permutation": [0, 1]},
    {"id": "q3", "kind": "choice", "answer": "B", "permutation": [2, 0, 1]},  # B showed Cat: wrong
    {"id": "q4", "kind": "choice", "answer": "I cannot determine that.", "permutation": [1, 0]},
    {"id": "q5", "kind": "choice", "answer": "Maybe both", "permutation": [0, 1]},
    {"id": "o1", "kind": "open", "answer": "The cat."},
    {"id": "o2", "kind": "open", "answer": ""},  # RAP's scorer: "" == normalize("A"); here never
    {"id": "o3", "kind": "open", "answer": "A."},
    {"id": "o4", "kind": "open", "answer": "I don't know"},
    {"id": "o5", "kind": "open", "answer": "dark blue"},
    {"id": "o6", "kind": "open", "answer": "the"},
    {"id": "ghost", "kind": "open", "answer": "x"},  # not a row of the folder
]


def make_folder(folder: Path, rows=ROWS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_rows(folder, rows)
    write_manifest(folder, Manifest("hand", "tests", {}, len(DATABASE_TAGS)))
    concepts = {tag: {"name": tag.strip("<>"), "image": f"references/{tag.strip('<>')}.png", "info": "x",
                      "category": "toy"} for tag in DATABASE_TAGS}
    (folder / "database.json").write_text(json.dumps({"concept_dict": concepts, "path_to_concept": {}}))
    return folder


def write_predictions(path: Path, lines, torn: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + torn)
    return path


@pytest.fixture
def scored(tmp_path):
    bench = make_folder(tmp_path / "bench")
    predictions = write_predictions(tmp_path / "run" / "predictions.jsonl", PREDICTIONS, torn='{"id": "o9", "ki')
    return score_benchmark(predictions, bench)


def test_the_readers_doctests():
    assert doctest.testmod(score_module).failed == 0


def test_rows_counted_unanswered_unknown_and_torn(scored):
    assert scored["rows"] == {"in_folder": 26, "scored": 25, "unanswered": 1, "unknown_ids": 1, "unreadable_lines": 1}
    assert scored["recognition"]["unanswered"] == 1  # p5: left out of the rates, counted


def test_recognition_unclear_counted_wrong_and_balanced(scored):
    section = scored["recognition"]
    # positives p1..p4: only p1 right (p3 abstains, p4 is unclear) -> 1/4. Yo'LLaVA's script would drop
    # p3 and p4 and print 1/2.
    assert section["positive"] == {"rows": 4, "correct": 1, "accuracy": 0.25}
    # negatives: n1, n3, n4 right; n2 wrong; n5 skipped (wrong) -> 3/5
    assert section["negative"]["rows"] == 5 and section["negative"]["accuracy"] == 0.6
    assert section["negative"]["same_category"] == {"rows": 2, "correct": 1, "accuracy": 0.5}
    assert section["negative"]["other_category"] == {"rows": 2, "correct": 1, "accuracy": 0.5}
    assert section["negative"]["unknown"] == {"rows": 1, "correct": 1, "accuracy": 1.0}
    assert section["balanced_accuracy"] == pytest.approx((0.25 + 0.6) / 2)  # 0.425
    assert section["accuracy"] == pytest.approx(4 / 9) and section["correct"] == 4
    assert (section["unclear"], section["abstained"], section["skipped"]) == (2, 1, 1)


def test_caption_official_strict_and_absent_names(scored):
    section = scored["caption"]
    assert (section["rows"], section["with_concepts"]) == (5, 4)
    # official (single script): c1 correct; c2 MISS (<rex> is in the file's pool); c3 none (abstains);
    # c4 none: the token "<bo>'s" is not "<bo>", and <zed> is in no row -> P 1/2, R 1/4, F1 1/3
    official = section["official"]
    assert official["variant"] == "single"
    assert (official["correct"], official["miss"], official["none"], official["total"]) == (1, 1, 2, 4)
    assert official["precision"] == 0.5 and official["recall"] == 0.25
    assert official["f1"] == pytest.approx(1 / 3, abs=1e-6)
    # strict: c4's "<Bo>'s" names <bo> -> P 2/3, R 1/2, F1 4/7
    strict = section["strict"]
    assert (strict["correct"], strict["miss"], strict["none"]) == (2, 1, 1)
    assert strict["precision"] == pytest.approx(2 / 3, abs=1e-6) and strict["recall"] == 0.5
    assert strict["f1"] == pytest.approx(4 / 7, abs=1e-6)
    # absent names (pool: the database): c2 <rex>, c4 <zed>, c5 <kim> -> 3 of 5 captions
    assert section["absent_names"] == {"captions": 3, "rate": 0.6, "names": 3, "pool": 4}
    assert (section["abstained"], section["abstention_rate"]) == (1, 0.2)


def test_choice_maps_letters_back_and_prints_the_answer_prior(scored):
    section = scored["choice"]
    # q1 "B" -> shown 1 -> source 0 right; q2 "answer is A" right; q3 "B" -> source 0, truth 2, wrong;
    # q4 abstains (unparseable); q5 no letter (unparseable) -> 2/5
    assert (section["correct"], section["accuracy"]) == (2, 0.4)
    assert (section["unparseable"], section["abstained"], section["skipped"]) == (2, 1, 0)
    # source order: right answers at [0, 0, 2, 0, 0] -> always "A" scores 4/5
    assert section["answer_prior"]["source_order"] == {"letter": "A", "correct": 4, "accuracy": 0.8}
    # order shown: right answers at [1, 0, 0, 1, 0] -> always "A" scores 3/5
    assert section["answer_prior"]["shown_order"] == {"letter": "A", "correct": 3, "accuracy": 0.6}


def test_open_normalised_match_never_credits_an_empty_answer(scored):
    section = scored["open"]
    # o1 "The cat." == "cat"; o3 "A." == "A" (articles kept, the truth being one); o2 "" and o6 "the" never
    # match "A"; o4 abstains; o5 differs -> 2/6
    assert (section["correct"], section["rows"]) == (2, 6)
    assert section["accuracy"] == pytest.approx(1 / 3, abs=1e-6)
    assert (section["empty_answers"], section["abstained"]) == (2, 2)  # empty: o2, o6; abstained: o2, o4


def test_abstention_per_kind(scored):
    assert scored["abstention"] == {
        "recognition": {"count": 1, "rate": pytest.approx(1 / 9, abs=1e-6)},
        "caption": {"count": 1, "rate": 0.2},
        "choice": {"count": 1, "rate": 0.2},
        "open": {"count": 2, "rate": pytest.approx(1 / 3, abs=1e-6)},
    }


def test_yollava_text_qa_skew_constant_answer_against_the_prior(tmp_path):
    """Yo'LLaVA's text QA: 390 of 400 right answers are "A". A model that always says "A" scores the prior
    (97.5 %) in the source's order; with the options permuted per row it scores what chance gives."""
    rows = [BenchRow(f"t{i}", "choice", "Q?", 0 if i < 390 else 1, options=["x", "y"]) for i in range(400)]
    bench = make_folder(tmp_path / "bench", rows)
    in_order = [{"id": row.id, "kind": "choice", "answer": "A", "permutation": [0, 1]} for row in rows]
    results = score_benchmark(write_predictions(tmp_path / "a" / "predictions.jsonl", in_order), bench)
    assert results["choice"]["accuracy"] == 0.975
    assert results["choice"]["answer_prior"]["source_order"] == {"letter": "A", "correct": 390, "accuracy": 0.975}
    permuted = [{"id": row.id, "kind": "choice", "answer": "A", "permutation": choice_permutation(row.id, 2, 0)}
                for row in rows]
    results = score_benchmark(write_predictions(tmp_path / "b" / "predictions.jsonl", permuted), bench)
    expected = sum(line["permutation"][0] == row.answer for line, row in zip(permuted, rows, strict=True))
    assert results["choice"]["correct"] == expected and 0.35 < results["choice"]["accuracy"] < 0.65
    assert results["choice"]["answer_prior"]["source_order"]["accuracy"] == 0.975  # the prior is still shown


def test_the_readers_edge_cases():
    assert parse_choice("(B) Crocodile", ["Duck", "Crocodile"]) == 1
    assert parse_choice("Option C", ["a", "b"]) is None  # past the last option
    assert parse_choice("A dog", ["dog", "cat"]) is None  # the article "A" is not a letter answer
    assert parse_choice("cat", ["dog", "cat"]) == 1
    assert open_match("An apple", "apple") and not open_match("", "") and not open_match("the", "A")
    assert abstains("No idea.") and abstains("  ") and abstains("Unknown")
    assert not abstains("No, it is not there.", lambda prefix: False)


def test_results_file_and_refusals(tmp_path, scored):
    bench = make_folder(tmp_path / "bench2")
    path = write_results(scored, tmp_path / "run" / "predictions.jsonl")
    assert path == tmp_path / "run" / RESULTS_JSON
    text = path.read_text()
    assert json.loads(text) == json.loads(json.dumps(scored)) and text.count("\n") > 50  # indented for reading
    assert set(scored["rules"]) == {"all", "abstention", "recognition", "caption", "choice", "open"}
    wrong_kind = write_predictions(tmp_path / "k" / "predictions.jsonl", [{"id": "q1", "kind": "open", "answer": "A"}])
    with pytest.raises(RepicError, match="'q1' is a open prediction but a choice row"):
        score_benchmark(wrong_kind, bench)
    bad_order = write_predictions(tmp_path / "p" / "predictions.jsonl",
                                  [{"id": "q1", "kind": "choice", "answer": "A", "permutation": [0, 0]}])
    with pytest.raises(RepicError, match="not an order of the row's 2 options"):
        score_benchmark(bad_order, bench)
    with pytest.raises(RepicError, match="does not exist"):
        score_benchmark(tmp_path / "nowhere" / "predictions.jsonl", bench)
    # a folder holding predictions.jsonl is read as that file
    assert score_benchmark(tmp_path / "run", tmp_path / "bench")["rows"]["scored"] == 25
