"""Scoring: official name matching (all three script variants), strict matching, OCT and VLT accuracy.

Every expected number is worked out by hand in the comment next to it. The official variants were also
checked against the official RePIC scripts on RePIC's published caption dumps (2 and 4 concepts); these
small rows reproduce the behaviours that matter there.
"""

from __future__ import annotations

import pytest

from repic.errors import RepicError
from repic.evaluate import (
    CaptionRow,
    LocalizationRow,
    NameScores,
    RecognitionRow,
    choose_official_variant,
    localization_accuracy,
    official_scores,
    recognition_accuracy,
    strict_scores,
)
from repic.evaluate.metrics import official_tokens


def row(concepts: list[str], caption: str) -> CaptionRow:
    return CaptionRow("query.jpg", tuple(concepts), caption)


def counts(scores: NameScores) -> tuple[int, int, int, int]:
    return scores.correct, scores.miss, scores.none, scores.total


# A small 2-concept file shaped like RePIC's own dump, including its two traps: "<Bond>'s" is one
# token that never matches, and the prose word "bond" matches the bare name once captions are lower-cased.
PAIRS = [
    row(
        ["<Anya>", "<Bond>"],
        "In this lively scene, <Anya> rides on <Bond>'s back, showing their playful bond.",
    ),
    row(["<H>", "<T>"], "<H> drives while <T> smiles."),
    row(["<H>", "<T>"], "<Anya> waves at <H>."),
]


@pytest.mark.parametrize(
    ("caption", "lower", "expected"),
    [
        # "</s>" removed; edge punctuation stripped; brackets kept; empty tokens ("--") dropped.
        ('"<Bo>," -- (Kim)! </s>', False, {"<Bo>", "Kim"}),
        ('"<Bo>," -- (Kim)! </s>', True, {"<bo>", "kim"}),
        # A possessive is one token: the official match cannot see "<Bo>" in "<Bo>'s".
        ("<Bo>'s tail", False, {"<Bo>'s", "tail"}),
    ],
)
def test_official_tokens(caption, lower, expected):
    assert official_tokens(caption, lower=lower) == expected


@pytest.mark.parametrize(
    ("variant", "expected_counts", "precision", "recall", "f1"),
    [
        # two (case-sensitive): row 1 Anya correct, Bond none ("<Bond>'s" and "bond" miss "Bond"; no other
        # pool name present); row 2 both correct; row 3 H correct, T MISS (Anya, outside the row, is named).
        # correct 4, MISS 1, none 1: P = 4/5, R = 4/6, F1 = 2 * 0.8 * (2/3) / (0.8 + 2/3) = 8/11.
        ("two", (4, 1, 1, 6), 0.8, 4 / 6, 8 / 11),
        # four (lower-cased): the prose word "bond" now names <Bond>, so row 1 is 2 correct:
        # correct 5, MISS 1: P = R = F1 = 5/6.
        ("four", (5, 1, 0, 6), 5 / 6, 5 / 6, 5 / 6),
        # single: only first concepts (Anya, H, H) are scored, and all three are named: 3/3.
        ("single", (3, 0, 0, 3), 1.0, 1.0, 1.0),
    ],
)
def test_official_variants_on_a_two_concept_file(variant, expected_counts, precision, recall, f1):
    scores = official_scores(PAIRS, variant)
    assert counts(scores) == expected_counts
    assert scores.precision == pytest.approx(precision)
    assert scores.recall == pytest.approx(recall)
    assert scores.f1 == pytest.approx(f1)


def test_official_variant_is_chosen_from_the_file():
    # Two concepts per row: the case-sensitive two-concept script, as in the first case above.
    assert official_scores(PAIRS) == official_scores(PAIRS, "two")


@pytest.mark.parametrize(
    ("concepts_per_row", "variant"),
    [([1, 1], "single"), ([2], "two"), ([1, 2], "two"), ([3], "four"), ([2, 4], "four"), ([], "single")],
)
def test_choose_official_variant_by_the_largest_row(concepts_per_row, variant):
    rows = [row([f"<c{i}>" for i in range(n)], "") for n in concepts_per_row]
    assert choose_official_variant(rows) == variant


def test_four_concept_script_excludes_other_concepts_by_exact_spelling():
    # Pool: <A>, <B> and <a> (another row spells A in lower case). Row 1 names only A.
    rows = [row(["<A>", "<B>"], "A waves."), row(["<a>"], "Nobody here.")]
    # four: "<a>" is not in row 1's list, so its name "a" counts as another concept: B is a MISS.
    # correct 1 (A), MISS 1 (B), none 1 (row 2): P = 1/2, R = 1/3, F1 = 2 * (1/2) * (1/3) / (5/6) = 0.4.
    four = official_scores(rows, "four")
    assert counts(four) == (1, 1, 1, 3)
    assert four.f1 == pytest.approx(0.4)
    # two: case-sensitive, "A" is only <A>'s name; nothing else is named: B none. P = 1, R = 1/3, F1 = 0.5.
    assert counts(official_scores(rows, "two")) == (1, 0, 2, 3)
    # strict: <A> and <a> are one concept, named by the caption; B none.
    assert counts(strict_scores(rows)) == (1, 0, 2, 3)


def test_single_concept_script_scores_and_pools_first_concepts_only():
    rows = [row(["<Thor>", "<Loki>"], "Loki smiles."), row(["<bo>"], "THE <BO> NAPS.")]
    # single: the pool is the first concepts {<Thor>, <bo>}; <Loki> is neither scored nor a candidate,
    # so row 1 is none (not a MISS). Row 2 is correct once lower-cased. P = 1/1, R = 1/2.
    scores = official_scores(rows, "single")
    assert counts(scores) == (1, 0, 1, 2)
    assert (scores.precision, scores.recall) == (1.0, 0.5)
    # four scores every concept: Thor none (Loki is in the row's own list), Loki correct, bo correct.
    assert counts(official_scores(rows, "four")) == (2, 0, 1, 3)


def test_multi_word_names_never_match_officially_but_do_strictly():
    rows = [row(["<black widow>"], "Black Widow lands.")]
    assert counts(official_scores(rows)) == (0, 0, 1, 1)  # the tokens are "black" and "widow"
    assert counts(strict_scores(rows)) == (1, 0, 0, 1)


def test_unknown_official_variant_is_an_error():
    with pytest.raises(RepicError, match="single, two, four"):
        official_scores(PAIRS, "three")


# Strict mode, one row at a time. The pool always also holds <other>, so a wrong name shows as a MISS.
@pytest.mark.parametrize(
    ("truth", "caption", "outcome"),
    [
        ("<Anya>", "<Anya>'s arms are raised.", "correct"),  # possessive after the bracketed tag
        ("<Anya>", "(anya) waves", "correct"),  # case-insensitive, punctuation is a boundary
        ("<Anya>", "Anyas everywhere", "none"),  # not a whole word
        ("<bo>", "Bob and </bo> sit.", "none"),  # a longer word and the closing tag are not the name
        ("<quick silver>", "Quicksilver runs.", "correct"),  # words of a name may be joined
        ("<Parrot_1>", "Parrot 1 sings.", "correct"),  # underscore or space
        ("<black widow>", "BLACK-WIDOW lands.", "correct"),  # or a hyphen
        ("<Anya>", "Only <other> is here.", "miss"),  # another pool concept named instead
        ("<america>", "Captain America salutes.", "miss"),  # the longest name wins: this is the captain
        ("<Anya>", "A quiet street.", "none"),  # nothing named
    ],
)
def test_strict_matching(truth, caption, outcome):
    rows = [row([truth], caption), row(["<other>"], ""), row(["<captain america>"], "")]
    expected = {"correct": (1, 0, 0), "miss": (0, 1, 0), "none": (0, 0, 1)}[outcome]
    # The two helper rows name nothing, so they add two "none" outcomes to every case.
    correct, miss, none = expected
    assert counts(strict_scores(rows)) == (correct, miss, none + 2, 3)


def test_strict_aliases_add_display_names():
    rows = [row(["<ironman>", "<thor>"], "Iron Man and Thor fly.")]
    # Without an alias "Iron Man" is not <ironman>: Thor correct, ironman none. P = 1, R = 1/2.
    assert counts(strict_scores(rows)) == (1, 0, 1, 2)
    # Aliases may be keyed by the tag in any spelling, with or without brackets.
    for key in ("<ironman>", "ironman", "<IronMan>"):
        assert counts(strict_scores(rows, {key: ["Iron Man"]})) == (2, 0, 0, 2)


def test_strict_matches_the_official_two_concept_example():
    # Row 1: "<Bond>'s" names Bond (and so does the prose word "bond"): correct 5, MISS 1 (row 3's T).
    assert counts(strict_scores(PAIRS)) == (5, 1, 0, 6)


def test_scores_are_zero_when_nothing_is_named_or_nothing_is_scored():
    # Nothing named: no correct and no MISS, so precision's denominator is 0 and every rate is 0.
    assert strict_scores([row(["<bo>"], "A dog.")]) == NameScores(0.0, 0.0, 0.0, 0, 0, 1, 1)
    assert official_scores([]) == NameScores(0.0, 0.0, 0.0, 0, 0, 0, 0)


def test_recognition_accuracy():
    rows = [
        RecognitionRow("1.jpg", ("<bo>",), "Yes, it is <bo>.", "yes"),  # right
        RecognitionRow("2.jpg", ("<bo>",), "No.", "yes"),  # wrong
        RecognitionRow(
            "3.jpg", ("<bo>",), "I know it is not.", "no"
        ),  # the official reading finds "no" in "know"
        RecognitionRow("4.jpg", ("<bo>",), "Hard to tell.", "no"),  # no answer: wrong and unparseable
    ]
    scores = recognition_accuracy(rows)
    # 2 of 4 right; positives: 1 of 2; negatives: 1 of 2.
    assert (scores.accuracy, scores.yes_recall, scores.no_recall) == (0.5, 0.5, 0.5)
    assert (scores.correct, scores.total, scores.positives, scores.negatives, scores.unparseable) == (
        2,
        4,
        2,
        2,
        1,
    )


def test_recognition_rates_without_rows_of_a_label_are_none():
    scores = recognition_accuracy([RecognitionRow("1.jpg", ("<bo>",), "yes", "yes")])
    assert (scores.accuracy, scores.yes_recall, scores.no_recall) == (1.0, 1.0, None)
    assert recognition_accuracy([]).accuracy is None


def test_localization_accuracy():
    truth = (0.0, 0.0, 10.0, 10.0)
    rows = [
        LocalizationRow("1.jpg", ("<bo>",), "[0, 0, 10, 10]", truth),  # IoU 1
        LocalizationRow("2.jpg", ("<bo>",), "[5, 0, 15, 10]", truth),  # overlap 50, union 150: IoU 1/3
        LocalizationRow("3.jpg", ("<bo>",), "It is at [0, 0, 20, 10].", truth),  # 100 / 200 = 0.5
        LocalizationRow("4.jpg", ("<bo>",), "on the left", truth),  # no box: IoU 0
    ]
    scores = localization_accuracy(rows)
    # Hits at IoU >= 0.5: rows 1 and 3. Mean IoU (1 + 1/3 + 1/2 + 0) / 4 = 11/24.
    assert (scores.hits, scores.total, scores.unparseable) == (2, 4, 1)
    assert scores.accuracy == 0.5
    assert scores.mean_iou == pytest.approx(11 / 24)
    # A stricter threshold keeps only the exact box.
    assert localization_accuracy(rows, threshold=0.75).hits == 1
    assert localization_accuracy([]).mean_iou is None
