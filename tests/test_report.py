"""The report writer: results.json round trip, report.md tables, plots, the gallery, atomic folder writes.

The results are built by hand; every rate is worked out in the comment next to its counts. The full
report (with plots, whose rendering costs most of this file's time) is written once per module.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from repic.errors import RepicError
from repic.evaluate import LocalizationScores, NameScores, RecognitionScores
from repic.report import (
    CaptionResult,
    ClaimCheck,
    Count,
    GalleryReference,
    GalleryRow,
    ModelResult,
    NameHighlighter,
    Results,
    RewardKeys,
    read_results,
    read_reward_series,
    results_table,
    write_gallery,
    write_report,
)
from repic.report.markdown import duration, render_markdown
from repic.report.readme import SECTION_END, SECTION_START, update_section
from repic.report.readme import main as summary_main
from repic.report.summary import summary_markdown


def names(precision: float, recall: float, f1: float, correct: int, miss: int, total: int) -> NameScores:
    return NameScores(precision, recall, f1, correct, miss, total - correct - miss, total)


# base, 2 concepts: 1 correct, 1 MISS of 4 -> P = 1/2, R = 1/4, F1 = 2 * (1/2 * 1/4) / (3/4) = 1/3.
BASE_TWO = names(0.5, 0.25, 1 / 3, 1, 1, 4)
# repic, 2 concepts, official: 3 correct, 1 MISS of 4 -> P = R = F1 = 3/4.
REPIC_TWO_OFFICIAL = names(0.75, 0.75, 0.75, 3, 1, 4)
# repic, 2 concepts, strict: 4 correct of 4 -> 100 / 100 / 100.
REPIC_TWO_STRICT = names(1.0, 1.0, 1.0, 4, 0, 4)
# repic, 1 concept: 2 correct of 3, no MISS -> P = 1, R = 2/3, F1 = 2 * (2/3) / (5/3) = 4/5.
REPIC_SINGLE = names(1.0, 2 / 3, 0.8, 2, 0, 3)


def hand_results() -> Results:
    return Results(
        models=[
            ModelResult(
                "base",
                "shipped tiny base",
                captions={"two": CaptionResult(2, BASE_TWO, BASE_TWO, absent_named=Count(1, 2))},
                # 3 of 4 answers right: 2/2 positives, 1/2 negatives.
                recognition=RecognitionScores(0.75, 1.0, 0.5, 3, 4, 2, 2, 0),
                # 1 hit of 4 boxes, IoUs 0.6, 0.2, 0, 0 -> mean 0.2.
                localization=LocalizationScores(0.25, 0.2, 1, 4, 2, 0.5),
            ),
            ModelResult(
                "repic",
                "start + RePIC GRPO",
                captions={
                    "two": CaptionResult(2, REPIC_TWO_OFFICIAL, REPIC_TWO_STRICT, absent_named=Count(0, 2)),
                    "single": CaptionResult(3, REPIC_SINGLE, REPIC_SINGLE),
                },
                recognition=RecognitionScores(1.0, 1.0, 1.0, 4, 4, 2, 2, 0),
            ),
        ],
        title="Hand-made comparison",
        timings={"build": 12.0, "train": 90.5},
        commands=["repic data build --out data"],
        configs={"grpo": {"beta": 0.04, "output": Path("runs/grpo")}},
        checks=[
            ClaimCheck("RePIC > base, two F1 (official / strict)", "75.0 / 100.0", "33.3 / 33.3", True),
            ClaimCheck("RePIC > base, VLT accuracy", "0.0", "25.0", False),
            ClaimCheck("RePIC > base, OCT accuracy", "76.0", "75.5", False, "one answer", verdict="within noise"),
        ],
        machine="test machine",
        created="2025-01-02T03:04:05+00:00",
    )


def png(path: Path, size: tuple[int, int], color: str) -> Path:
    Image.new("RGB", size, color).save(path)
    return path


@pytest.fixture(scope="module")
def metrics(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("metrics") / "metrics.jsonl"
    rows = [
        {"step": 1, "reward": 0.25, "rewards/oct": 0.5, "rewards/vlt": 0.0, "rewards/ict": 0.5, "kl": 0.0},
        {"step": 2, "reward": 0.5, "rewards/oct": 1.0, "rewards/ict": 0.5, "rewards/ict_multi": 0.5},
        {"loss": 1.2},  # a summary row without a step: skipped
        {"step": 3, "reward": None, "rewards/oct": "n/a", "rewards/vlt": 0.25},
    ]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("images")
    return {
        "query": png(folder / "query.png", (400, 300), "white"),
        "bo": png(folder / "bo.png", (64, 64), "brown"),
        "kim": png(folder / "kim.png", (64, 64), "blue"),
    }


def gallery_rows(images: dict[str, Path]) -> list[GalleryRow]:
    references = [GalleryReference(images["bo"], "<bo>"), GalleryReference(images["kim"], "<kim>")]
    return [
        GalleryRow(
            images["query"],
            ["<bo>"],
            references,
            {"base": "<kim> sits <script>alert(1)</script> & waits.", "repic": "<bo> plays; not </bo>."},
            evaluation="two",
        ),
        # The same query and references again: their thumbnails are copied once.
        GalleryRow(images["query"], ["<bo>"], references, {"repic": "Bo runs."}, evaluation="two"),
    ]


@pytest.fixture(scope="module")
def report(tmp_path_factory, metrics, images):
    out = tmp_path_factory.mktemp("report") / "report"
    return write_report(out, hand_results(), metrics_path=metrics, gallery_rows=gallery_rows(images))


# ------------------------------------------------------------------------------------ the folder


def test_report_folder_has_every_file(report):
    names_written = sorted(p.relative_to(report.folder).as_posix() for p in report.folder.rglob("*"))
    assert names_written == [
        "gallery",
        "gallery.html",
        "gallery/0001.png",  # the query, once for both rows
        "gallery/0002.png",  # <bo>'s reference
        "gallery/0003.png",  # <kim>'s reference
        "name_scores_official.png",
        "name_scores_strict.png",
        "report.md",
        "results.json",
        "reward_curves.png",
        "summary.md",
    ]
    assert report.markdown == report.folder / "report.md" and report.gallery == report.folder / "gallery.html"
    assert [p.name for p in report.plots] == [
        "reward_curves.png",
        "name_scores_official.png",
        "name_scores_strict.png",
    ]
    assert not list(report.folder.parent.glob(".report.*"))  # no staging folder left behind


def test_stages_that_overlapped_report_their_wall_clock_beside_their_sum():
    overlapped = replace(hand_results(), wall_seconds=70.25)
    assert Results.from_json(json.loads(json.dumps(overlapped.to_json()))) == overlapped
    assert "wall_seconds" not in hand_results().to_json()  # stages in turn: their sum is the run's time
    assert markdown_rows(render_markdown(overlapped), "## Timings")[-2:] == [
        ["sum of the stages", "102.5 s (1:42)"],
        ["wall clock (stages side by side)", "70.2 s (1:10)"],
    ]
    with pytest.raises(RepicError, match="must be a number of seconds >= 0"):
        replace(hand_results(), wall_seconds=-1.0)


def test_results_json_round_trips(report):
    expected = hand_results()
    # Configs are held as plain JSON values from construction on, so the read record equals the written one.
    assert read_results(report.results) == Results.from_json(expected.to_json()) == expected
    document = json.loads(report.results.read_text(encoding="utf-8"))
    assert document["format"] == "repic-results" and document["version"] == 3
    assert document["checks"][1] == {
        "statement": "RePIC > base, VLT accuracy", "repic": "0.0", "other": "25.0", "holds": False, "note": "",
        "verdict": "does not hold", "gaps": [], "low": None, "high": None,  # a check made without seeds
    }
    # The path in the config is written as a string; the rate next to the counts is for readers.
    assert document["configs"]["grpo"] == {"beta": 0.04, "output": "runs/grpo"}
    assert document["models"][0]["captions"]["two"]["absent_named"] == {"hits": 1, "total": 2, "rate": 0.5}


def markdown_rows(text: str, heading: str) -> list[list[str]]:
    """The body rows of the first table after ``heading`` in a markdown page."""
    lines = text.split(heading + "\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append([cell.strip() for cell in line.strip("|").split("|")])
    return table[2:]  # without the header and the rule


def test_report_tables_hold_hand_checked_numbers(report):
    text = report.markdown.read_text(encoding="utf-8")
    # evaluation, model, P, R, F1, correct, MISS, none, concepts, captions, absent named, retrieval
    assert markdown_rows(text, "### official (RePIC scripts)") == [
        ["1 concept", "repic", "100.0", "66.7", "80.0", "2", "0", "1", "3", "3", "n/a", "n/a"],
        ["2 concepts", "base", "50.0", "25.0", "33.3", "1", "1", "2", "4", "2", "50.0 (1/2)", "n/a"],
        ["2 concepts", "repic", "75.0", "75.0", "75.0", "3", "1", "0", "4", "2", "0.0 (0/2)", "n/a"],
    ]
    assert markdown_rows(text, "### strict (whole names)")[2][:5] == [
        "2 concepts",
        "repic",
        "100.0",
        "100.0",
        "100.0",
    ]
    # model, OCT accuracy, yes-recall, no-recall, answers, VLT accuracy, mean IoU, boxes
    assert markdown_rows(text, "## Recognition (OCT) and localization (VLT)") == [
        ["base", "75.0", "100.0", "50.0", "4", "25.0 (at IoU 0.5)", "0.200", "4"],
        ["repic", "100.0", "100.0", "100.0", "4", "n/a", "n/a", "n/a"],
    ]
    assert markdown_rows(text, "## The claim, checked") == [
        ["RePIC &gt; base, two F1 (official / strict)", "75.0 / 100.0", "33.3 / 33.3", "holds"],  # ">" escaped
        ["RePIC &gt; base, VLT accuracy", "0.0", "25.0", "**does not hold**"],
        ["RePIC &gt; base, OCT accuracy", "76.0", "75.5", "**within noise** (one answer)"],  # the note beside it
    ]
    # 12.0 + 90.5 = 102.5 s = 1:42 (rounded seconds).
    assert markdown_rows(text, "## Timings")[-1] == ["total", "102.5 s (1:42)"]


def test_report_numbers_equal_results_json(report):
    """Every P/R/F1 cell of report.md is results.json's fraction as a percentage with one decimal."""
    text = report.markdown.read_text(encoding="utf-8")
    document = json.loads(report.results.read_text(encoding="utf-8"))
    labels = {"1 concept": "single", "2 concepts": "two"}
    checked = 0
    for mode, heading in (
        ("official", "### official (RePIC scripts)"),
        ("strict", "### strict (whole names)"),
    ):
        for row in markdown_rows(text, heading):
            model = next(m for m in document["models"] if m["label"] == row[1])
            caption = model["captions"][labels[row[0]]]
            scores = caption[mode]
            assert row[2:5] == [f"{scores[k] * 100:.1f}" for k in ("precision", "recall", "f1")]
            assert row[5:10] == [str(scores[k]) for k in ("correct", "miss", "none", "total")] + [
                str(caption["rows"])
            ]
            checked += 1
    assert checked == 6  # 3 (evaluation, model) rows in each mode


def test_report_embeds_plots_and_links_gallery(report):
    text = report.markdown.read_text(encoding="utf-8")
    for plot in report.plots:
        assert f"]({plot.name})" in text
    assert "[gallery.html](gallery.html): 2 held-out queries" in text
    assert "```console\nrepic data build --out data\n```" in text
    assert "```yaml\nbeta: 0.04\noutput: runs/grpo\n```" in text
    assert "Written 2025-01-02T03:04:05+00:00 on test machine." in text


@pytest.mark.parametrize(
    ("name", "min_size", "max_size"),
    [
        # Wide enough to read at 100% zoom, small enough to fit a screen without scaling down much.
        ("reward_curves.png", (900, 450), (1600, 900)),
        ("name_scores_official.png", (500, 400), (1600, 1000)),  # one evaluation row of 2 panels
        ("name_scores_strict.png", (500, 400), (1600, 1000)),
    ],
)
def test_plots_are_pngs_of_sensible_size(report, name, min_size, max_size):
    path = report.folder / name
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert min_size[0] <= image.width <= max_size[0] and min_size[1] <= image.height <= max_size[1]
        # Not a blank canvas: a drawn figure has many distinct colours.
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 24)) > 50


# ------------------------------------------------------------------------------------ the gallery


def test_gallery_escapes_text_and_highlights_names(report):
    page = report.gallery.read_text(encoding="utf-8")
    # <kim> is not in the image (red); the script tag is text, not markup.
    assert (
        '<mark class="absent">&lt;kim&gt;</mark> sits &lt;script&gt;alert(1)&lt;/script&gt; &amp; waits.'
        in page
    )
    assert "<script>" not in page
    # <bo> is in the image (green); the closing form </bo> is not a name.
    assert '<mark class="present">&lt;bo&gt;</mark> plays; not &lt;/bo&gt;.' in page
    assert '<mark class="present">Bo</mark> runs.' in page
    # Row 2 has no base caption: shown as such, not dropped.
    assert '<td class="caption missing">no caption</td>' in page
    assert page.count('src="gallery/0001.png"') == 2
    assert '<figcaption class="absent">&lt;kim&gt;</figcaption>' in page
    with Image.open(report.folder / "gallery" / "0001.png") as query:
        assert query.size == (320, 240)  # 400 x 300 scaled to a longest side of 320


@pytest.mark.parametrize(
    ("text", "present", "expected"),
    [
        # Case-insensitive, brackets optional; present green, other pool names red.
        ("BO met <Kim>.", ["<bo>"], '<mark class="present">BO</mark> met <mark class="absent">&lt;Kim&gt;</mark>.'),
        # Possessives name the concept; longer words and the closing form do not.
        ("Bo's ball, Bobby, </bo>", ["<bo>"], '<mark class="present">Bo</mark>&#x27;s ball, Bobby, &lt;/bo&gt;'),
        # A multi-word name in any of its spellings; the longest name wins over "america".
        ("Captain_America and america", ["<captain america>"],
         '<mark class="present">Captain_America</mark> and <mark class="absent">america</mark>'),
    ],
)  # fmt: skip
def test_name_highlighter(text, present, expected):
    highlighter = NameHighlighter(["<bo>", "<kim>", "<captain america>", "<america>"])
    assert highlighter.html(text, present) == expected


def test_gallery_refuses_captions_of_unknown_models(tmp_path, images):
    with pytest.raises(RepicError, match=r"captions of models 'base', 'repic' that are not among"):
        write_gallery(tmp_path, gallery_rows(images), ["sft"])


def test_gallery_names_the_row_of_a_missing_image(tmp_path, images):
    rows = [GalleryRow(images["query"], ["<bo>"], [GalleryReference(tmp_path / "gone.png", "<bo>")], {})]
    with pytest.raises(RepicError, match=r"gallery row 1, reference 1: image .*gone\.png does not exist"):
        write_gallery(tmp_path / "out", rows, ["base"])


# ------------------------------------------------------------------------------------ reward curves


def test_reward_series_skip_missing_values(metrics):
    # Step 3's total is null and its OCT value a string: both skipped; the row without a step too.
    assert read_reward_series(metrics) == {
        "total": [(1.0, 0.25), (2.0, 0.5)],
        "oct": [(1.0, 0.5), (2.0, 1.0)],
        "vlt": [(1.0, 0.0), (3.0, 0.25)],
        "ict": [(1.0, 0.5), (2.0, 0.5)],
        "ict_multi": [(2.0, 0.5)],
    }


def test_reward_keys_are_configurable(tmp_path):
    path = tmp_path / "trl.jsonl"
    path.write_text('{"global_step": 5, "rewards/oct/mean": 0.5, "reward": 1.0}\n', encoding="utf-8")
    keys = RewardKeys(step="global_step", total=None, tasks={"oct": "rewards/oct/mean"})
    assert read_reward_series(path, keys) == {"oct": [(5.0, 0.5)]}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"step": 1, "loss": 0.3}\n', r"no reward values .* its rows have keys loss, step; pass RewardKeys"),
        ('{"step": 1, "reward": 0.5}\n{"step": 2, "rew\n', r"line 2 is not JSON"),
        ("[1, 2]\n", r"line 1 is not a JSON object"),
    ],
)
def test_bad_metrics_logs_are_explained(tmp_path, content, message):
    path = tmp_path / "metrics.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(RepicError, match=message):
        read_reward_series(path)


# ------------------------------------------------------------------------------------ results model


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(format="other"), r"is not a repic results file"),
        (lambda d: d.update(version=4), r"format version 4; this repic reads versions 1 to 3; upgrade"),
        (lambda d: d["checks"][0].update(holds="yes"), r"checks\[0\]: 'holds' must be true or false"),
        (lambda d: d["checks"][1].pop("repic"), r"checks\[1\]: 'repic' must be a string"),
        (lambda d: d["models"][0]["captions"]["two"]["official"].pop("recall"), r"two\.official has no 'recall'"),
        (lambda d: d["models"][0]["captions"]["two"].update(rows="2"), r"captions\.two\.rows must be a whole"),
        (lambda d: d["models"][1]["captions"].update(tow={}), r"unknown caption evaluation 'tow'"),
        (lambda d: d["models"][0].update(recognition=[]), r"models\[0\]\.recognition must be a JSON object"),
    ],
)  # fmt: skip
def test_malformed_results_json_is_explained(edit, message):
    document = hand_results().to_json()
    edit(document)
    with pytest.raises(RepicError, match=message):
        Results.from_json(document, "results.json")


def test_version_1_results_read_without_checks():
    document = hand_results().to_json()
    document["version"] = 1
    del document["checks"]
    assert Results.from_json(document).checks == []


def test_checks_written_before_notes_existed_read_with_none():
    document = hand_results().to_json()
    for check in document["checks"]:
        del check["note"]
    assert [check.note for check in Results.from_json(document).checks] == ["", "", ""]
    document["checks"][0]["note"] = 3
    with pytest.raises(RepicError, match=r"checks\[0\]: 'note' must be a string"):
        Results.from_json(document)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: [r.models[0], r.models[0]], r"model label 'base' is used twice"),
        # 75.0 is a percentage: results hold fractions.
        (lambda r: [ModelResult("x", captions={"two": CaptionResult(2, names(75.0, 0.75, 0.75, 3, 1, 4),
                                                                      BASE_TWO)})],
         r"model 'x', two, official scores: precision is 75.0, outside \[0, 1\]"),
        (lambda r: [ModelResult("x", captions={"three": CaptionResult(1, BASE_TWO, BASE_TWO)})],
         r"unknown caption evaluation 'three'"),
        (lambda r: [], r"at least one model"),
    ],
)  # fmt: skip
def test_results_refuse_inconsistent_models(change, message):
    with pytest.raises(RepicError, match=message):
        Results(models=change(hand_results()), machine="m", created="now")


def test_results_refuse_configs_that_json_cannot_hold():
    with pytest.raises(RepicError, match=r"type object .* cannot be written to results\.json"):
        Results(
            models=[ModelResult("base")], configs={"grpo": {"callback": object()}}, machine="m", created="now"
        )


# ------------------------------------------------------------------------------------ printed table


def test_results_table_puts_both_modes_side_by_side():
    lines = [" ".join(line.split()) for line in results_table(hand_results()).splitlines()]
    # evaluation, model, P, R, F1 (official / strict), absent named
    assert "1 concept repic 100.0 / 100.0 66.7 / 66.7 80.0 / 80.0 n/a" in lines
    assert "2 concepts base 50.0 / 50.0 25.0 / 25.0 33.3 / 33.3 50.0" in lines
    assert "2 concepts repic 75.0 / 100.0 75.0 / 100.0 75.0 / 100.0 0.0" in lines
    assert "base 75.0 100.0 50.0 4 25.0 (at IoU 0.5) 0.200 4" in lines


def test_markdown_escapes_run_text():
    results = Results(
        models=[ModelResult("a|b", "trained on <bo>")],
        commands=["echo ```"],
        machine="m",
        created="now",
    )
    text = render_markdown(results)
    assert "| a\\|b | trained on &lt;bo&gt; |" in text
    assert "````console\necho ```\n````" in text  # a fence longer than the backticks inside


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(12.34, "12.3 s"), (83.4, "83.4 s (1:23)"), (3725, "3725.0 s (1:02:05)")],  # 3725 s = 1 h 2 min 5 s
)
def test_duration(seconds, expected):
    assert duration(seconds) == expected


# ------------------------------------------------------------------------------------ atomic folder


def quick_results() -> Results:
    """Results without caption evaluations: no plots to render, so these tests stay fast."""
    return Results(models=[ModelResult("base", recognition=RecognitionScores(0.5, 1.0, 0.0, 1, 2, 1, 1, 0))],
                   machine="m", created="now")  # fmt: skip


def test_write_report_replaces_a_previous_report(tmp_path):
    out = tmp_path / "report"
    write_report(out, quick_results())
    (out / "stale.txt").write_text("from an older run", encoding="utf-8")
    written = write_report(out, quick_results())
    assert sorted(p.name for p in out.iterdir()) == ["report.md", "results.json", "summary.md"]
    assert written.plots == () and written.gallery is None


def test_write_report_keeps_the_previous_report_when_it_fails(tmp_path, images):
    out = tmp_path / "report"
    write_report(out, quick_results())
    before = (out / "report.md").read_text(encoding="utf-8")
    broken = [GalleryRow(tmp_path / "missing.png", ["<bo>"], [], {"base": "x"})]
    with pytest.raises(RepicError, match=r"gallery row 1, query: image .*missing\.png does not exist"):
        write_report(out, quick_results(), gallery_rows=broken)
    assert (out / "report.md").read_text(encoding="utf-8") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # staging folder removed


def test_write_report_refuses_a_folder_that_is_not_a_report(tmp_path):
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(RepicError, match=r"already holds files and is not a repic report"):
        write_report(tmp_path, quick_results())
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_write_report_explains_a_missing_metrics_log(tmp_path):
    with pytest.raises(RepicError, match=r"metrics file .*absent\.jsonl does not exist"):
        write_report(tmp_path / "report", quick_results(), metrics_path=tmp_path / "absent.jsonl")
    assert not (tmp_path / "report").exists()


def test_retrieval_counts_round_trip_and_show_in_the_name_table(tmp_path):
    retrieved = CaptionResult(2, BASE_TWO, BASE_TWO, absent_named=Count(1, 2), retrieval_top1=Count(1, 2),
                              retrieval_recall=Count(3, 4))
    results = Results(models=[ModelResult("base", "shipped tiny base", captions={"two_retrieval": retrieved})])
    assert Results.from_json(results.to_json()).models == results.models
    document = results.to_json()
    assert document["models"][0]["captions"]["two_retrieval"]["retrieval_recall"] == {"hits": 3, "total": 4, "rate": 0.75}
    text = render_markdown(results)
    assert "| 50.0 / 75.0 |" in text  # first retrieved in the image 1 of 2, true concepts found 3 of 4


# ------------------------------------------------------------------------------------ summary.md
def test_summary_table_and_lines_hold_hand_checked_numbers(report):
    text = report.summary.read_text(encoding="utf-8")
    assert text == summary_markdown(hand_results())
    assert markdown_table_rows(text) == [
        ["evaluation", "base", "repic"],
        ["1 concept (3 captions)", "n/a", "**80.0**"],  # 4/5; base has no single-concept result
        # official 75.0, strict 100.0 after the slash; absent named 1 of 2 and 0 of 2 in parentheses
        ["2 concepts (2 captions; absent named %)", "33.3 (50.0)", "**75.0 / 100.0 (0.0)**"],
        ["OCT accuracy % (balanced, chance 50)", "75.0", "**100.0**"],
        ["VLT accuracy % at IoU 0.5 (mean IoU)", "**25.0 (0.200)**", "n/a"],
    ]
    assert "Claim checks: 1 of 3 hold, 1 within noise, 1 do not hold. Within noise: RePIC > base, OCT accuracy " \
        "(76.0 vs 75.5: one answer). Does not hold: RePIC > base, VLT accuracy (0.0 vs 25.0)." in text
    assert "The stages took 102.5 s (1:42) in all (their records summed); the longest, train, 90.5 s (1:30)." in text
    assert "Retrieval" not in text  # no evaluation retrieved its references


def test_summary_bolds_no_model_in_a_tie_and_gives_the_wall_clock_of_overlapped_stages():
    results = hand_results()
    tied = replace(results, models=[replace(m, recognition=results.models[0].recognition) for m in results.models],
                   wall_seconds=70.25)  # fmt: skip
    text = summary_markdown(tied)
    assert ["OCT accuracy % (balanced, chance 50)", "75.0", "75.0"] in markdown_table_rows(text)
    assert "70.2 s (1:10) of wall clock side by side (their sum 102.5 s (1:42))" in text


def test_a_markdown_files_summary_section_is_rewritten_and_the_rest_kept(tmp_path, report):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n\n{SECTION_START}\nold table\n{SECTION_END}\n\nafter\n", encoding="utf-8")
    assert summary_main([str(report.results), str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert text == f"# Title\n\nbefore\n\n{SECTION_START}\n\n{summary_markdown(hand_results())}\n{SECTION_END}\n\nafter\n"
    assert summary_main([str(report.results), str(readme)]) == 0 and readme.read_text(encoding="utf-8") == text


@pytest.mark.parametrize("content", ["no markers", f"{SECTION_END}\n{SECTION_START}", f"{SECTION_START}\n{SECTION_START}\n{SECTION_END}"])
def test_a_markdown_file_without_one_summary_section_is_refused_and_left_as_it_was(tmp_path, report, content, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(content, encoding="utf-8")
    assert summary_main([str(report.results), str(readme)]) == 2
    assert "needs the lines" in capsys.readouterr().err and readme.read_text(encoding="utf-8") == content


@pytest.mark.parametrize("page", ["README.md", "docs/demo.md"])
def test_the_readme_and_the_demo_page_quote_the_summary_of_the_demo_run_they_describe(page):
    root = Path(__file__).resolve().parents[1]
    text = (root / page).read_text(encoding="utf-8")
    summary = summary_markdown(read_results(root / "docs" / "demo" / "results.json"))
    assert update_section(text, summary) == text, (
        f"{page}'s results summary is not docs/demo/results.json's: run "
        f"python -m repic.report.readme docs/demo/results.json {page}"
    )


def markdown_table_rows(text: str) -> list[list[str]]:
    """The cells of the first table in ``text`` (header row included, the rule row left out)."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows if not row.startswith("|---")]


def test_the_summary_updater_explains_a_missing_results_file_and_a_file_that_is_not_text(tmp_path, report, capsys):
    readme = tmp_path / "README.md"
    readme.write_bytes(b"\xff\xfe\x00binary")
    assert summary_main([str(report.results), str(readme)]) == 2
    assert "is not UTF-8 text" in capsys.readouterr().err and readme.read_bytes() == b"\xff\xfe\x00binary"
    readme.write_text(f"{SECTION_START}\n{SECTION_END}\n", encoding="utf-8")
    assert summary_main([str(tmp_path / "nowhere.json"), str(readme)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert readme.read_text(encoding="utf-8") == f"{SECTION_START}\n{SECTION_END}\n"
    assert summary_main([str(report.results), str(tmp_path / "missing.md")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_claims_module_doctests_pass():
    import doctest

    from repic.report import claims

    assert doctest.testmod(claims).failed == 0 and doctest.testmod(claims).attempted >= 1


@pytest.mark.parametrize("spec, message", [
    ("repic", "is not LABEL=DIR"), ("=eval/a", "is not LABEL=DIR"), ("repic=", "is not LABEL=DIR"),
])
def test_report_model_specs_say_their_form(spec, message):
    from repic.report.compare import parse_model

    with pytest.raises(RepicError, match=message):
        parse_model(spec)


def test_report_model_and_claim_specs_are_read():
    from repic.report.compare import parse_claim, parse_model

    assert parse_model("repic=eval/s0,eval/s1") == ("repic", [Path("eval/s0"), Path("eval/s1")])
    assert parse_claim(" repic > base ") == ("repic", "base")
    with pytest.raises(RepicError, match="is not BETTER>OTHER"):
        parse_claim("repic")


def test_compare_models_refuses_unknown_claims_and_uneven_seeds(tmp_path):
    from repic.concepts import ConceptDatabase
    from repic.report.compare import compare_models

    database = ConceptDatabase(tmp_path / "database.json")
    runs = {"a": [tmp_path / "a0", tmp_path / "a1"], "b": [tmp_path / "b0", tmp_path / "b1", tmp_path / "b2"]}
    with pytest.raises(RepicError, match="names 'c', which is not a --model"):
        compare_models(runs, database, claims=[("a", "c")])
    with pytest.raises(RepicError, match="as many folders each"):
        compare_models(runs, database)
    with pytest.raises(RepicError, match="--seeds names 3 seeds for 2 folders"):
        compare_models({"a": runs["a"]}, database, seeds=[0, 1, 2])
