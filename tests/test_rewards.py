"""The RePIC verifiable rewards: official semantics, every anti-hacking rule, every option, TRL calling style."""

from __future__ import annotations

import doctest
import importlib
import pickle
import pkgutil

import pytest

import repic.rewards
from repic.errors import RepicError
from repic.rewards import (
    RewardOptions,
    TaskReward,
    completion_text,
    compute,
    explain,
    first_yes_no,
    ict_multi_reward,
    ict_reward,
    is_degenerate,
    make_reward_funcs,
    oct_reward,
    official_box_iou,
    parse_box,
    repetition_rate,
    vlt_reward,
)

OMNI = RewardOptions(min_caption_chars=5, absent_name_cost=0.5)  # Omni-Persona's -0.5 per absent name
FOUR_SHOWN = ["<bo>", "<kim>", "<max>", "<ann>"]


def caption(names: str, length: int) -> str:
    """``names`` padded with dots to exactly ``length`` characters."""
    assert len(names) <= length
    return names + "." * (length - len(names))


# ---------------------------------------------------------------- reading model output


@pytest.mark.parametrize(
    "completion, text",
    [
        ("plain", "plain"),  # a plain string is the text
        (None, ""),  # a missing completion reads as empty
        ([{"role": "assistant", "content": "Yes."}], "Yes."),  # TRL conversational completion
        ({"role": "assistant", "content": "No"}, "No"),  # a single message
        (  # content parts: text joined, image parts carry no text
            [
                {
                    "content": [
                        {"type": "text", "text": "<bo> "},
                        {"type": "image"},
                        {"type": "text", "text": "naps"},
                    ]
                }
            ],
            "<bo> naps",
        ),
        ([{"content": "a"}, {"content": "b"}], "a\nb"),  # several messages: all their text, newline-joined
        ([{"role": "assistant", "content": None}], ""),  # empty content
    ],
)
def test_completion_text(completion, text):
    assert completion_text(completion) == text


@pytest.mark.parametrize(
    "text, word_boundary, expected",
    [
        ("Yes, it is.", False, "yes"),  # plain answer
        ("NO!", False, "no"),  # case-insensitive, lower-cased result
        ("I know: yes", False, "no"),  # official: the FIRST occurrence, even inside "know"
        ("I know: yes", True, "yes"),  # whole words only: "know" is skipped
        ("nothing here", False, "no"),  # official: "no" inside "nothing"
        ("nothing here", True, None),  # whole words only: nothing found
        ("no. yes.", True, "no"),  # first whole word wins
        ("", False, None),  # empty output
    ],
)
def test_first_yes_no(text, word_boundary, expected):
    assert first_yes_no(text, word_boundary=word_boundary) == expected


@pytest.mark.parametrize(
    "text, strict, lenient",
    [
        ("at [12, 30, 200, 180].", (12, 30, 200, 180), (12, 30, 200, 180)),  # the usual answer
        ("[1,2,3,4] then [5, 6, 7, 8]", (1, 2, 3, 4), (1, 2, 3, 4)),  # the first box wins
        # Qwen grounding JSON with integers: the official regex already finds the list inside
        ('[{"bbox_2d": [10, 20, 30, 40], "label": "<bo>"}]', (10, 20, 30, 40), (10, 20, 30, 40)),
        ("[ 1, 2, 3, 4 ]", None, (1, 2, 3, 4)),  # spaces inside brackets: official regex refuses
        ("[1.5, 2, 3, 4]", None, (1.5, 2, 3, 4)),  # floats: lenient only
        ("[-5, 0, 10, 10]", None, (-5, 0, 10, 10)),  # negative numbers: lenient only
        # lenient prefers the box after "bbox_2d" over an earlier list of four numbers
        ('[1, 1, 2, 2] {"bbox_2d": [10, 20, 30, 40]}', (1, 1, 2, 2), (10, 20, 30, 40)),
        ('{"bbox_2d": [1, 2]} [3, 4, 5, 6]', (3, 4, 5, 6), (3, 4, 5, 6)),  # malformed bbox_2d: fall back
        ("[1, 2, 3]", None, None),  # three numbers are no box
        ("no box here", None, None),
    ],
)
def test_parse_box(text, strict, lenient):
    assert parse_box(text) == strict
    assert parse_box(text, lenient=True) == lenient


@pytest.mark.parametrize(
    "pred, truth, iou",
    [
        # x: [5, 9] inclusive -> 9 - 5 + 1 = 5; y: [0, 9] -> 10; inter 50; union 100 + 100 - 50 = 150
        ((0, 0, 10, 10), (5, 0, 15, 10), 50 / 150),
        # x and y: [7, 11] -> 5 each; inter 25; union 100 + 100 - 25 = 175
        ((2, 2, 12, 12), (7, 7, 17, 17), 25 / 175),
        ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),  # identical: inter [0, 9] -> 10 x 10 = 100 = union
        # x: left 9, right min(9, 18) = 9, not 9 < 9 -> no overlap (standard IoU would be 10 / 190)
        ((0, 0, 10, 10), (9, 0, 19, 10), 0.0),
        ((0, 0, 10, 10), (20, 20, 30, 30), 0.0),  # disjoint
        # negative coordinates: inter [0, 9] x [0, 9] = 100; union 400 + 100 - 100 = 400
        ((-10, -10, 10, 10), (0, 0, 10, 10), 100 / 400),
        ((10, 10, 0, 0), (0, 0, 20, 20), 0.0),  # inverted prediction scores 0
        ((5, 5, 5, 15), (0, 0, 20, 20), 0.0),  # zero-width prediction scores 0
        ((5, 5, 5, 5), (5, 5, 5, 5), 0.0),  # two empty boxes: union 0 is clamped to 1, no division by zero
    ],
)
def test_official_box_iou_arithmetic(pred, truth, iou):
    assert official_box_iou(pred, truth) == pytest.approx(iou)


@pytest.mark.parametrize(
    "text, rate",
    [
        ("the cat sat on the mat " * 3, 1 - 6 / 15),  # 18 tokens, 15 4-grams, 6 distinct
        ("the cat sat on the mat " * 2, 1 - 6 / 9),  # 12 tokens, 9 4-grams, 6 distinct
        ("one two three four five six seven eight", 0.0),  # 8 tokens, 5 4-grams, all distinct
        ("bo bo bo bo bo bo bo", 0.0),  # 7 tokens < 2 x 4: too short to judge
        ("<bo><bo><bo>", 1 - 3 / 6),  # 9 tokens (< bo > x 3), 6 4-grams, 3 distinct
    ],
)
def test_repetition_rate(text, rate):
    assert repetition_rate(text) == pytest.approx(rate)


def test_is_degenerate_threshold():
    # rate 0.6 (three copies) is above the default 0.5; two copies (rate 1/3) are not
    assert is_degenerate("the cat sat on the mat " * 3)
    assert not is_degenerate("the cat sat on the mat " * 2)
    assert not is_degenerate("the cat sat on the mat " * 3, threshold=0.7)  # 0.6 < 0.7


# ---------------------------------------------------------------- oct


@pytest.mark.parametrize(
    "output, truth, options, expected",
    [
        ("No, it is not.", "no", {}, 1.0),  # matching label
        ("Yes", "no", {}, 0.0),  # wrong label
        ("YES", "Yes.", {}, 1.0),  # case and label punctuation do not matter
        ("I don't know; yes", "yes", {}, 0.0),  # official: "no" inside "know" comes first
        ("I don't know; yes", "yes", {"word_boundary": True}, 1.0),  # whole words: "yes"
        ("maybe", "yes", {}, 0.0),  # no yes/no at all
        ("Yes and no", "no", {}, 0.0),  # only the first answer counts
    ],
)
def test_oct_reward_rules(output, truth, options, expected):
    assert compute("yes_no", output, truth, RewardOptions(**options)) == expected


# ---------------------------------------------------------------- vlt


@pytest.mark.parametrize(
    "output, truth, options, expected",
    [
        ("[0, 0, 10, 10]", [0, 0, 20, 10], {}, 1.0),  # IoU 100 / 200 = 0.5: exactly on the threshold
        ("[0, 0, 10, 10]", [0, 0, 21, 10], {}, 0.0),  # IoU 100 / 210 = 0.476 < 0.5
        ("[0, 0, 10, 10]", [0, 0, 21, 10], {"iou_threshold": 0.4}, 1.0),  # 0.476 >= 0.4
        ("[0, 0, 10, 10]", [0, 0, 21, 10], {"continuous_iou": True}, 100 / 210),  # reward = IoU
        ("[0, 0, 10, 10]", "[0, 0, 20, 10]", {}, 1.0),  # truth as a JSON string
        ("[0, 0, 10, 10]", (0.0, 0.0, 20.0, 10.0), {}, 1.0),  # truth as a tuple of floats
        ("[10, 10, 0, 0]", [0, 0, 10, 10], {}, 0.0),  # inverted prediction: 0, no error
        ("[-2, 0, 10, 10]", [0, 0, 10, 10], {}, 0.0),  # strict: a negative number is no box
        # lenient: inter 10 x 10 = 100, union 120 + 100 - 100 = 120 -> 0.83
        ("[-2, 0, 10, 10]", [0, 0, 10, 10], {"lenient_boxes": True}, 1.0),
        ("The box is [0, 0, 10]", [0, 0, 10, 10], {}, 0.0),  # no parsable box
    ],
)
def test_vlt_reward_rules(output, truth, options, expected):
    assert compute("iou", output, truth, RewardOptions(**options)) == pytest.approx(expected)


# ---------------------------------------------------------------- ict


@pytest.mark.parametrize(
    "output, name, options, expected",
    [
        (caption("<bo>", 99), "<bo>", {}, 0.0),  # 99 characters: one short of the paper's 100
        (caption("<bo>", 100), "<bo>", {}, 1.0),  # exactly 100 characters
        (caption("<bo> is </bo>", 100), "<bo>", {}, 0.0),  # closing form present: the tag-farming hack
        (caption("</bo>", 100), "<bo>", {}, 0.0),  # only the closing form: name absent
        (caption("<Bo>", 100), "<bo>", {}, 0.0),  # names match case-sensitively
        (caption("no name", 100), "<bo>", {}, 0.0),  # name absent
        (caption("<C++> codes", 100), "<C++>", {}, 1.0),  # regex metacharacters are literal
        (caption("<axb>", 100), "<a.b>", {}, 0.0),  # "." is not a wildcard
        (caption("<axb>", 100), "<a.b>", {"word_boundary": True}, 0.0),  # nor in the regex path
        (caption("<a.b>!", 100), "<a.b>", {"word_boundary": True}, 1.0),
        (caption("<bo>", 40), "<bo>", {"min_caption_chars": 40}, 1.0),  # the tiny CPU world's minimum
        (caption("<bo>", 100), " <bo>\n", {}, 1.0),  # whitespace around the true name is stripped
        (caption("<bo>", 150), "<bo>", {"max_caption_chars": 150}, 1.0),  # at the upper bound
        (caption("<bo>", 151), "<bo>", {"max_caption_chars": 150}, 0.0),  # above the upper bound
        (caption("bob", 100), "bo", {}, 1.0),  # official: a bare name matches inside "bob"
        (caption("bob", 100), "bo", {"word_boundary": True}, 0.0),  # whole names: "bob" is another word
        (caption("bo's toy", 100), "bo", {"word_boundary": True}, 1.0),  # "'" ends the word
        (caption("abo", 100), "bo", {"word_boundary": True}, 0.0),  # glued at the front: another word
        (caption("<bo>,", 100), "<bo>", {"word_boundary": True}, 1.0),  # punctuation after a tag is fine
        (caption("my<bo>s", 100), "<bo>", {"word_boundary": True}, 1.0),  # brackets already delimit a tag
        (caption("<bø> et <ü>", 100), "<ü>", {}, 1.0),  # unicode names
    ],
)
def test_ict_reward_rules(output, name, options, expected):
    assert compute("yes_no_name", output, name, RewardOptions(**options)) == expected


# ---------------------------------------------------------------- ict_multi


@pytest.mark.parametrize(
    "output, names, options, expected",
    [
        (caption("<bo> <kim> <ann>", 100), ["<bo>", "<kim>", "<ann>"], {}, 1.0),  # all three
        (caption("<bo> and <kim>", 100), ["<bo>", "<kim>", "<ann>"], {}, 2 / 3),  # 2 of 3 = 0.6667
        (caption("<bo> and <kim>", 99), ["<bo>", "<kim>", "<ann>"], {}, 0.0),  # under 100 characters
        (caption("<bo> </bo> <kim>", 100), ["<bo>", "<kim>"], {}, 0.5),  # closing form voids <bo> only
        (caption("<bo>", 100), [], {}, 0.0),  # empty name list earns nothing
        (caption("<bo>", 100), "<bo>", {}, 1.0),  # a single string is a list of one
        (caption("<bo>", 100), '["<bo>", "<kim>"]', {}, 0.5),  # a JSON string of a list
        (caption("bob and <kim>", 100), ["bo", "<kim>"], {"word_boundary": True}, 0.5),  # "bob" is not "bo"
        (caption("<bo> <kim>", 50), ["<bo>", "<kim>"], {"min_caption_chars": 50}, 1.0),  # tiny world minimum
    ],
)
def test_ict_multi_reward_rules(output, names, options, expected):
    assert compute("yes_no_name_multi", output, names, RewardOptions(**options)) == pytest.approx(expected)


def test_degeneration_gate_zeroes_runaway_repetition_only():
    farmed = "<bo> is a good dog. " * 10  # 200 chars; 8 tokens x 10: 77 4-grams, 8 distinct, rate 0.90
    fine = (
        "<bo> naps on a grey sofa while the afternoon sun warms the old rug and a kettle hums in the kitchen."
    )
    gate = RewardOptions(degeneration_gate=True)
    assert compute("ict", farmed, "<bo>") == 1.0  # the paper's rules accept it
    assert compute("ict", farmed, "<bo>", gate) == 0.0  # the gate does not
    assert compute("ict", fine, "<bo>", gate) == 1.0  # an ordinary caption passes the gate
    assert compute("ict_multi", farmed, ["<bo>"], gate) == 0.0  # the gate covers multi captions too
    # two copies of an 18-token passage: 33 4-grams, 18 distinct, rate 0.45: under the default 0.5,
    # above a stricter 0.3
    twice = "<bo> naps on a grey sofa in the warm afternoon sun by the open window. " * 2
    assert compute("ict", twice, "<bo>", gate) == 1.0
    assert (
        compute("ict", twice, "<bo>", RewardOptions(degeneration_gate=True, degeneration_threshold=0.3))
        == 0.0
    )


@pytest.mark.parametrize(
    "output, names, shown, penalty, expected",
    [
        # shown <bo> <kim> <max> <ann>; present <bo> <kim>; absent <max> <ann>
        ("<bo> <kim>", ["<bo>", "<kim>"], ["<bo>", "<kim>", "<max>", "<ann>"], 1.0, 1.0),  # no absent name
        ("<bo> <kim> <max>", ["<bo>", "<kim>"], ["<bo>", "<kim>", "<max>", "<ann>"], 1.0, 0.5),  # 1 - 1/2
        ("<bo> <kim> <max>", ["<bo>", "<kim>"], ["<bo>", "<kim>", "<max>", "<ann>"], 0.5, 0.75),  # 1 - 0.5/2
        ("<bo> <max> <ann>", ["<bo>", "<kim>"], ["<bo>", "<kim>", "<max>", "<ann>"], 1.0, 0.0),  # 0.5 - 1, at 0
        ("<bo> <kim> <max>", ["<bo>", "<kim>"], ["<bo>", "<kim>", "<max>", "<ann>"], 0.0, 1.0),  # the paper
        ("<bo> <kim> <max>", ["<bo>", "<kim>"], None, 1.0, 1.0),  # nothing known to be absent
        ("<bo> <max>", "<bo>", '["<bo>", "<max>"]', 1.0, 0.0),  # ict, shown as a JSON string
    ],
)
def test_absent_name_penalty(output, names, shown, penalty, expected):
    task = "ict" if isinstance(names, str) else "ict_multi"
    options = RewardOptions(min_caption_chars=5, absent_name_penalty=penalty)
    assert compute(task, output, names, options, shown=shown) == pytest.approx(expected)


@pytest.mark.parametrize(
    "output, names, shown, cost, expected",
    [
        # ict: <bo> present, <max> shown but absent; reward (credited - cost x absent named) / 1 true name
        ("<bo> naps", "<bo>", ["<bo>", "<max>"], 0.5, 1.0),  # (1 - 0) / 1
        ("<bo> and <max>", "<bo>", ["<bo>", "<max>"], 0.5, 0.5),  # (1 - 0.5 x 1) / 1
        ("a dog naps", "<bo>", ["<bo>", "<max>"], 0.5, 0.0),  # (0 - 0) / 1
        ("<max> naps", "<bo>", ["<bo>", "<max>"], 0.5, -0.5),  # (0 - 0.5 x 1) / 1: worse than nothing
        ("<max> naps", "<bo>", ["<max>", "<bo>"], 2.0, -2.0),  # (0 - 2 x 1) / 1; the order shown is moot
        ("<bo> <max>", "<bo>", '["<bo>", "<max>"]', 0.5, 0.5),  # shown as the dataset's JSON string
        ("<bo> <max>", "<bo>", None, 0.5, 1.0),  # nothing known to be absent: the paper's 1
        ("<bo> </bo> <max>", "<bo>", ["<bo>", "<max>"], 0.5, -0.5),  # closed name: (0 - 0.5) / 1
        ("<bo> <max>", "<bo>", ["<bo>", "<max>"], 0.0, 1.0),  # cost 0 is the paper
        # ict_multi: present <bo> <kim>, absent <max> <ann>; divided by the 2 true names
        ("<bo> <kim>", ["<bo>", "<kim>"], FOUR_SHOWN, 0.5, 1.0),  # (2 - 0) / 2
        ("<bo> <kim> <max>", ["<bo>", "<kim>"], FOUR_SHOWN, 0.5, 0.75),  # (2 - 0.5 x 1) / 2
        ("<bo> <max> <ann>", ["<bo>", "<kim>"], FOUR_SHOWN, 0.5, 0.0),  # (1 - 0.5 x 2) / 2
        ("<max> <ann>", ["<bo>", "<kim>"], FOUR_SHOWN, 1.0, -1.0),  # (0 - 1 x 2) / 2
        ("<max>", [], ["<max>"], 0.5, 0.0),  # an empty name list earns nothing, and pays nothing
    ],
)
def test_absent_name_cost(output, names, shown, cost, expected):
    task = "ict" if isinstance(names, str) else "ict_multi"
    options = RewardOptions(min_caption_chars=5, absent_name_cost=cost)
    assert compute(task, output, names, options, shown=shown) == pytest.approx(expected)


def test_absent_name_cost_charges_short_captions_too():
    # under the character minimum the present name earns nothing, but the absent one is still charged
    options = RewardOptions(min_caption_chars=100, absent_name_cost=0.5)
    assert compute("ict", "<bo> <max>", "<bo>", options, shown=["<bo>", "<max>"]) == -0.5  # (0 - 0.5) / 1


def test_degeneration_gate_removes_credit_but_keeps_the_absent_name_cost():
    farmed = "<bo> and <max> are good. " * 10  # repeats itself: rate far above 0.5
    gated = RewardOptions(min_caption_chars=5, degeneration_gate=True, absent_name_cost=0.5)
    assert compute("ict", farmed, "<bo>", gated, shown=["<bo>", "<max>"]) == 0.0  # (1 - 0.5) / 1 -> 0
    only_absent = "<max> is a good dog. " * 10
    assert compute("ict", only_absent, "<bo>", gated, shown=["<bo>", "<max>"]) == -0.5  # stays (0 - 0.5) / 1


def test_trl_functions_give_the_absent_name_cost_from_the_concepts_column():
    ict, ict_multi = TaskReward("ict", OMNI), TaskReward("ict_multi", OMNI)
    completions = ["<bo> and <max> nap.", "<max> naps.", "<bo> <kim> <max> play.", "yes"]
    columns = {
        "task": ["yes_no_name", "ict", "yes_no_name_multi", "oct"],
        "solution": ["<bo>", "<bo>", '["<bo>", "<kim>"]', "yes"],  # as grpo rows hold them: JSON strings
        "concepts": ['["<max>", "<bo>"]', '["<bo>", "<max>"]', '["<bo>", "<kim>", "<max>"]', '["<bo>"]'],
    }
    # ict: (1 - 0.5) / 1 and (0 - 0.5) / 1; ict_multi: (2 - 0.5) / 2
    assert ict(completions, **columns) == [0.5, -0.5, None, None]
    assert ict_multi(completions, **columns) == [None, None, 0.75, None]
    logged = {}
    ict(completions, **columns, log_metric=lambda name, value: logged.__setitem__(name, value))
    assert logged["reward_parts/ict/absent_named"] == 1.0  # both ict rows name their one absent concept


# ---------------------------------------------------------------- breakdowns


@pytest.mark.parametrize(
    "task, output, solution, options, parts",
    [
        ("oct", "Yes", "no", {}, {"overall": 0.0, "answered": 1.0}),
        ("oct", "hmm", "no", {}, {"overall": 0.0, "answered": 0.0}),
        ("vlt", "[0, 0, 10, 10]", [5, 0, 15, 10], {}, {"overall": 0.0, "parsed": 1.0, "iou": 50 / 150}),
        ("vlt", "nowhere", [5, 0, 15, 10], {}, {"overall": 0.0, "parsed": 0.0, "iou": 0.0}),
        (  # long enough, name found, but the closing form voids it
            "ict",
            caption("<bo> </bo>", 100),
            "<bo>",
            {},
            {"overall": 0.0, "length_ok": 1.0, "name_hits": 1.0, "closing_tag": 1.0},
        ),
        (  # 3 of 4 names found, one of them closed: credit 2/4; its 10 word 4-grams are all distinct
            "ict_multi",
            "<a> <b> <c> </c>",
            ["<a>", "<b>", "<c>", "<d>"],
            {"min_caption_chars": 10, "degeneration_gate": True},
            {"overall": 0.5, "length_ok": 1.0, "name_hits": 0.75, "closing_tag": 0.25, "repetition": 0.0},
        ),
    ],
)
def test_explain_breakdown(task, output, solution, options, parts):
    assert explain(task, output, solution, RewardOptions(**options)) == pytest.approx(parts)


def test_explain_shows_the_absent_names_share():
    options = RewardOptions(min_caption_chars=5, absent_name_penalty=0.5)
    parts = explain("ict_multi", "<a> <c>", ["<a>", "<b>"], options, shown=["<a>", "<b>", "<c>"])
    # <a> of <a> <b> found: 0.5; the one absent name <c> named: 0.5 - 0.5 * 1
    assert parts == {"overall": 0.0, "length_ok": 1.0, "name_hits": 0.5, "closing_tag": 0.0, "absent_named": 1.0}


# ---------------------------------------------------------------- options and ground truth


@pytest.mark.parametrize(
    "options, field",
    [
        ({"min_caption_chars": -1}, "min_caption_chars"),  # negative length
        ({"min_caption_chars": 99.5}, "min_caption_chars"),  # not a whole number
        ({"max_caption_chars": 50}, "max_caption_chars"),  # below the default minimum of 100
        ({"iou_threshold": 0}, "iou_threshold"),  # 0 would pay any box
        ({"iou_threshold": 1.5}, "iou_threshold"),  # above 1 is unreachable
        ({"continuous_iou": "yes"}, "continuous_iou"),  # flags must be booleans
        ({"degeneration_threshold": 1.0}, "degeneration_threshold"),  # nothing exceeds 1
        ({"absent_name_penalty": 1.5}, "absent_name_penalty"),  # more than a name's share
        ({"absent_name_penalty": -0.1}, "absent_name_penalty"),  # a bonus for naming absent concepts
        ({"absent_name_cost": -0.5}, "absent_name_cost"),  # a bonus for naming absent concepts
        ({"absent_name_cost": 4.5}, "absent_name_cost"),  # above 4
        ({"absent_name_cost": float("inf")}, "absent_name_cost"),  # not finite
        ({"absent_name_cost": True}, "absent_name_cost"),  # not a number
        ({"absent_name_cost": 0.5, "absent_name_penalty": 0.5}, "absent_name_penalty"),  # one or the other
    ],
)
def test_bad_options_name_the_field(options, field):
    with pytest.raises(RepicError, match=f"RewardOptions.{field}"):
        RewardOptions(**options)


@pytest.mark.parametrize(
    "task, solution, message",
    [
        ("oct", "maybe", "oct solution must be 'yes' or 'no', got 'maybe'"),
        ("oct", None, "oct solution must be 'yes' or 'no', got None"),
        ("vlt", [1, 2, 3], r"vlt solution must be 4 numbers \[x1, y1, x2, y2\], got \[1, 2, 3\]"),
        ("vlt", "[1, 2, 3, x]", "vlt solution must be 4 numbers"),  # broken JSON string
        ("vlt", [True, 0, 5, 5], "vlt solution must be 4 numbers"),  # a boolean is no coordinate
        ("vlt", [0, 0, float("nan"), 5], "vlt solution must be 4 numbers"),  # NaN
        ("vlt", [10, 10, 5, 20], "inverted or empty"),  # x2 < x1
        ("vlt", [0, 0, 0, 10], "inverted or empty"),  # zero width
        ("ict", "", "names must be non-empty strings"),  # an empty name would match every caption
        ("ict", ["<bo>"], "use ict_multi"),  # a list for the single-concept task
        ("ict_multi", ["<bo>", ""], "names must be non-empty strings"),
        ("ict_multi", [1, 2], "names must be non-empty strings"),
        ("ict_multi", 5, "must be a list of names"),
    ],
)
def test_malformed_ground_truth_raises(task, solution, message):
    with pytest.raises(RepicError, match=message):
        compute(task, "any output", solution)


def test_unknown_task_raises():
    with pytest.raises(RepicError, match="unknown task 'caption'"):
        compute("caption", "text", "<bo>")


# ---------------------------------------------------------------- TRL calling style


def chat(text):
    return [{"role": "assistant", "content": text}]


def test_trl_functions_score_own_rows_and_return_none_for_others():
    long_caption = caption("<bo> and <kim>", 100)
    columns = {
        "task": ["yes_no", "iou", "yes_no_name", "yes_no_name_multi", "oct"],
        "solution": ["yes", [0, 0, 20, 10], "<bo>", ["<bo>", "<kim>", "<ann>"], "no"],
        # extra columns and TRL's own keywords ride along and are ignored
        "prompts": ["p"] * 5,
        "completion_ids": [[1, 2]] * 5,
        "problem": ["q"] * 5,
        "image": ["img.png"] * 5,
        "trainer_state": object(),
    }
    completions = [chat("Yes."), chat("[0, 0, 10, 10]"), chat(long_caption), chat(long_caption), chat("Yes")]
    assert oct_reward(completions, **columns) == [1.0, None, None, None, 0.0]
    assert vlt_reward(completions, **columns) == [None, 1.0, None, None, None]  # IoU 0.5
    assert ict_reward(completions, **columns) == [None, None, 1.0, None, None]
    assert ict_multi_reward(completions, **columns) == [None, None, None, pytest.approx(2 / 3), None]


def test_trl_functions_read_the_official_column():
    assert oct_reward(["no"], solution=["no"], accu_reward_method=["yes_no"]) == [1.0]
    # both columns present and agreeing (either spelling)
    assert oct_reward(["no"], solution=["no"], task=["oct"], accu_reward_method=["yes_no"]) == [1.0]


@pytest.mark.parametrize(
    "columns, message",
    [
        ({"solution": ["no"]}, "'task' \\(or 'accu_reward_method'\\) column"),  # no task column
        ({"task": ["oct"]}, "'solution' column"),  # no truth column
        ({"task": ["oct", "oct"], "solution": ["no"]}, "1 completions but 2 tasks and 1 solutions"),
        (
            {"task": ["iou"], "accu_reward_method": ["yes_no"], "solution": ["no"]},
            "row 0 of the batch: task 'iou'",
        ),
        ({"task": ["caption"], "solution": ["no"]}, "unknown task 'caption' in row 0 of the batch"),
    ],
)
def test_trl_functions_reject_bad_columns(columns, message):
    with pytest.raises(RepicError, match=message):
        oct_reward(["no"], **columns)


def test_trl_ground_truth_error_names_the_row():
    solutions = [[0, 0, 5, 5]] * 3 + [[1, 2, 3]]
    with pytest.raises(RepicError) as info:
        vlt_reward(["[0, 0, 5, 5]"] * 4, task=["vlt"] * 4, solution=solutions)
    assert str(info.value).startswith(
        "row 3 of the batch: vlt solution must be 4 numbers [x1, y1, x2, y2], got [1, 2, 3]"
    )


def test_trl_functions_log_the_breakdown():
    logged = {}
    ict_reward(
        [caption("<bo>", 100), caption("<bo>", 99), "no"],
        task=["ict", "ict", "oct"],
        solution=["<bo>", "<bo>", "no"],
        log_metric=lambda name, value: logged.__setitem__(name, value),
    )
    # means over the two ict rows only: lengths 100 (ok) and 99 (short); both name the concept
    assert logged == {
        "reward_parts/ict/length_ok": 0.5,
        "reward_parts/ict/name_hits": 1.0,
        "reward_parts/ict/closing_tag": 0.0,
    }


def test_make_reward_funcs_names_order_and_options():
    funcs = make_reward_funcs()
    assert [f.__name__ for f in funcs] == ["oct", "vlt", "ict", "ict_multi"]  # TRL logs rewards/<name>/mean
    short = caption("<bo>", 40)
    assert funcs[2]([short], task=["ict"], solution=["<bo>"]) == [0.0]  # default minimum 100
    tiny = make_reward_funcs(RewardOptions(min_caption_chars=40))
    assert tiny[2]([short], task=["ict"], solution=["<bo>"]) == [1.0]  # bound options apply
    # picklable for multi-process launchers, options included
    restored = pickle.loads(pickle.dumps(tiny))
    assert restored[2].__name__ == "ict"
    assert restored[2]([short], task=["ict"], solution=["<bo>"]) == [1.0]


# ---------------------------------------------------------------- robustness (speed: benchmarks/reward_worst_case.py)

MEGABYTE = 1_000_000

HOSTILE_OUTPUTS = [
    None,  # no completion at all
    "",  # empty
    "ünïcødé 🐶 <bø> 是的",  # unicode
    "[" + "1" * MEGABYTE,  # a megabyte of digits after a bracket: the box regex must not backtrack badly
    "[1, " * (MEGABYTE // 4),  # a megabyte of almost-boxes
    "<bo" * (MEGABYTE // 3),  # a megabyte of almost-names
    "no yes " * (MEGABYTE // 7),  # a megabyte of answers
    [{"role": "assistant"}],  # a message without content
    12345,  # not text at all
]


@pytest.mark.parametrize("output", HOSTILE_OUTPUTS, ids=range(len(HOSTILE_OUTPUTS)))
@pytest.mark.parametrize(
    "task, solution",
    [("oct", "yes"), ("vlt", [0, 0, 10, 10]), ("ict", "<bo>"), ("ict_multi", ["<bo>", "bo"])],
)
def test_model_output_never_raises_and_scores_in_range(output, task, solution):
    every_option = RewardOptions(
        word_boundary=True,
        lenient_boxes=True,
        continuous_iou=True,
        degeneration_gate=True,
        max_caption_chars=10**7,
    )
    for options in (RewardOptions(), every_option):  # how fast: benchmarks/reward_worst_case.py
        assert 0.0 <= compute(task, output, solution, options) <= 1.0


@pytest.mark.parametrize(
    "task, output, solution, expected",
    [
        (
            "vlt",
            "[" + "1" * MEGABYTE + " [0, 0, 10, 10]",
            [0, 0, 20, 10],
            1.0,
        ),  # the box after the noise: IoU 0.5
        ("ict", "x" * MEGABYTE + " <bo>", "<bo>", 1.0),  # the name at the very end of a megabyte
        ("ict_multi", "<bo> " * (MEGABYTE // 5), ["<bo>", "<kim>"], 0.5),  # one of two names
        ("oct", "k" * MEGABYTE + " yes", "yes", 1.0),  # the answer after a megabyte of noise
    ],
)
def test_megabyte_outputs_are_read_to_the_end(task, output, solution, expected):
    assert compute(task, output, solution) == expected


def test_doctests_pass():
    modules = [repic.rewards] + [
        importlib.import_module(f"repic.rewards.{info.name}")
        for info in pkgutil.iter_modules(repic.rewards.__path__)
    ]
    for module in modules:
        result = doctest.testmod(module)
        assert result.failed == 0, module.__name__
    assert sum(doctest.testmod(module).attempted for module in modules) >= 20  # the examples really ran
