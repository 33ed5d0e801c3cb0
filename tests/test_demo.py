"""``repic demo``: the quick run end to end through the CLI, stage reuse, settings and the claim checks.

The quick demo runs once per module (about 10-20 s: every stage at tiny sizes, marked slow); the tests
read what it wrote. The report's numbers are checked against ``results.json`` by formatting them here, independently
of the report writer, and the predictions are re-scored with ``repic eval``.
"""

from __future__ import annotations

import doctest
import html
import io
import json
import re
import shlex
import shutil
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from repic.concepts.database import load_database
from repic.errors import RepicError
from repic.evaluate import models as evaluate_module
from repic.evaluate.intervals import caption_outcomes, rate_outcomes
from repic.evaluate.metrics import CaptionRow
from repic.evaluate.models import query_outcomes
from repic.shipped import shipped_base_path
from repic.train import load_config
from repic.world.demo import claims as claims_module
from repic.world.demo import pipeline as pipeline_module
from repic.world.demo import settings as settings_module
from repic.world.demo import stages as stages_module
from repic.world.demo.claims import claim_checks
from repic.world.demo.pipeline import MODELS, training_configs
from repic.world.demo.settings import FULL_WORLD, GRPO_RECIPE, QUICK_WORLD, demo_settings, scaled_world
from repic.world.demo.stages import DEMO_FILE, STAGES_DIR, DemoPaths, StageBook, open_run_folder

CAPTION_LABELS = {  # the report's display label of each caption evaluation
    "single": "1 concept",
    "two": "2 concepts",
    "four": "4 concepts",
    "single_retrieval": "1 concept, retrieval",
    "two_retrieval": "2 concepts, retrieval",
}
# The fixture's run: two training seeds and the faithful-naming row. One lane runs the units in this order
# (``work_units``: GRPO runs first, then SFT, then the models made once), each trained then evaluated.
QUICK_ARGS = ("--seeds", "0,1", "--faithful")
LABELS = [*MODELS, "faithful"]
UNITS = ["repic-s0", "faithful-s0", "repic-s1", "faithful-s1", "sft-s0", "sft-s1", "base", "start"]
STAGES = ["world", "data", "data-faithful", "start"] + [
    stage for unit in UNITS for stage in ([] if unit in ("base", "start") else [unit]) + [f"eval-{unit}"]
]


def run_repic(*args: object) -> tuple[int, str]:
    """``repic ARGS`` in-process through the real entry point: exit code and everything printed."""
    from repic.cli import main

    printed = io.StringIO()
    code = 0
    with redirect_stdout(printed), redirect_stderr(printed):
        try:
            main([str(arg) for arg in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0
    return code, printed.getvalue()


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    # two lanes: SFT and three evaluations run in a second process while GRPO trains
    code, printed = run_repic("demo", "--quick", "--out", out, "--lanes", 2, *QUICK_ARGS)
    assert code == 0, printed
    results = json.loads((out / "report" / "results.json").read_text(encoding="utf-8"))
    return out, printed, results


def rate(value: float | None) -> str:
    """A rate as the report prints it (one decimal of a percentage), worked out here, not by the writer."""
    return "n/a" if value is None else f"{value * 100:.1f}"


def model(results: dict, label: str) -> dict:
    return next(item for item in results["models"] if item["label"] == label)


# ------------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_quick_demo_writes_every_report_file_and_the_plots_are_images(quick):
    out, printed, _ = quick
    report = out / "report"
    for name in (
        "report.md",
        "summary.md",
        "results.json",
        "gallery.html",
        "reward_curves.png",
        "name_scores_official.png",
        "name_scores_strict.png",
        "seeds.png",
    ):
        assert (report / name).is_file(), name
    for name in ("reward_curves.png", "name_scores_official.png", "name_scores_strict.png", "seeds.png"):
        with Image.open(report / name) as image:
            assert image.format == "PNG" and image.width >= 800 and image.height >= 400  # readable at 100 %
    assert list((report / "gallery").glob("*.png"))  # thumbnails copied next to the page
    assert printed.rstrip().endswith(f"report: {report / 'report.md'}")


@pytest.mark.slow
def test_progress_has_a_start_and_an_end_line_per_stage_with_elapsed_seconds(quick):
    _, printed, _ = quick
    for stage in STAGES:
        assert re.search(rf"^\[\s*[\d.]+ s\] {stage}: started$", printed, re.M), stage
        assert re.search(rf"^\[\s*[\d.]+ s\] {stage}: done in [\d.]+ s$", printed, re.M), stage
    assert re.search(r"repic-s1: step 3/3 +reward", printed)  # training steps are shown as they are logged


@pytest.mark.slow
def test_results_hold_every_model_evaluation_and_count(quick):
    _, _, results = quick
    assert [item["label"] for item in results["models"]] == LABELS
    assert sorted(results["timings"]) == sorted(STAGES)  # every stage timed (two lanes: in either order)
    assert list(results["timings"])[:4] == STAGES[:4]  # those before the lanes, in run order
    world = QUICK_WORLD  # rows per evaluation = held-out scenes of each kind; concepts per row 1, 2, 4
    rows = {
        "single": world.n_eval_single,
        "two": world.n_eval_two,
        "four": world.n_eval_four,
        "single_retrieval": world.n_eval_single,
        "two_retrieval": world.n_eval_two,
    }
    per_row = {"single": 1, "two": 2, "four": 4, "single_retrieval": 1, "two_retrieval": 2}
    for item in results["models"]:
        assert set(item["captions"]) == set(CAPTION_LABELS)
        for key, result in item["captions"].items():
            assert result["rows"] == rows[key]
            for mode in ("official", "strict"):
                scores = result[mode]
                assert scores["correct"] + scores["miss"] + scores["none"] == scores["total"]
                # the official single-concept script scores one concept per row, the others all of them
                assert scores["total"] == rows[key] * per_row[key]
            # skip-retrieval shows only true concepts: nothing absent can be named, so nothing is counted
            if not key.endswith("retrieval"):
                assert result["absent_named"] is None and result["retrieval_top1"] is None
                continue
            # retrieval offers K = 2: an absent concept is offered unless the top 2 are exactly the true ones
            recall = result["retrieval_recall"]
            assert recall["total"] == rows[key] * per_row[key] and result["retrieval_top1"]["total"] == rows[key]
            every_true_found = per_row[key] == 2 and recall["hits"] == recall["total"]
            assert (result["absent_named"] is None) == every_true_found
        assert (
            item["recognition"]["total"] == 8 and item["localization"]["total"] == 4
        )  # QUICK_BUILD eval counts


@pytest.mark.slow
def test_printed_table_agrees_with_results_json(quick):
    _, printed, results = quick
    for key, label in CAPTION_LABELS.items():
        for name in LABELS:
            result = model(results, name)["captions"][key]
            cells = [
                f"{rate(result['official'][m])} / {rate(result['strict'][m])}"
                for m in ("precision", "recall", "f1")
            ]
            absent = result["absent_named"]
            expected = [label, name, *cells, rate(absent["hits"] / absent["total"]) if absent else "n/a"]
            assert any(re.split(r"\s{2,}", line.strip()) == expected for line in printed.splitlines()), (
                expected
            )
    for name in LABELS:
        oct_ = model(results, name)["recognition"]
        line = next(
            line for line in printed.splitlines() if line.startswith(f"{name} ") and "(at IoU" in line
        )
        assert line.split()[1:5] == [
            rate(oct_["accuracy"]),
            rate(oct_["yes_recall"]),
            rate(oct_["no_recall"]),
            str(oct_["total"]),
        ]


def markdown_rows(page: str, heading: str) -> list[list[str]]:
    """The body rows (cells) of the first table after ``heading``."""
    lines = page.split(heading, 1)[1].splitlines()
    first = next(index for index, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[first + 2 :]:  # after the header and the rule
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().removeprefix("|").removesuffix("|").split(" | ")])
    return rows


@pytest.mark.slow
def test_report_md_tables_agree_with_results_json(quick):
    out, _, results = quick
    page = (out / "report" / "report.md").read_text(encoding="utf-8")
    for mode, heading in (
        ("official", "### official (RePIC scripts)"),
        ("strict", "### strict (whole names)"),
    ):
        rows = {(row[0], row[1]): row for row in markdown_rows(page, heading)}
        for key, label in CAPTION_LABELS.items():
            for name in LABELS:
                scores = model(results, name)["captions"][key][mode]
                row = rows[(label, name)]
                assert row[2:10] == [
                    rate(scores["precision"]),
                    rate(scores["recall"]),
                    rate(scores["f1"]),
                    str(scores["correct"]),
                    str(scores["miss"]),
                    str(scores["none"]),
                    str(scores["total"]),
                    str(model(results, name)["captions"][key]["rows"]),
                ]
    tasks = {row[0]: row for row in markdown_rows(page, "## Recognition (OCT) and localization (VLT)")}
    for name in LABELS:
        vlt = model(results, name)["localization"]
        assert tasks[name][5] == f"{rate(vlt['accuracy'])} (at IoU 0.5)" and tasks[name][7] == str(
            vlt["total"]
        )
    assert "## Timings" in page and "repic demo --quick --out" in page  # how it was run is on the page
    seeds = {(row[0], row[1]): row[2:] for row in markdown_rows(page, "### Each seed")}
    for label in ("sft", "repic", "faithful"):
        values = results["summaries"][label]["two.official"]["values"]
        assert seeds[(label, "F1, 2 concepts (official)")] == [rate(value) for value in values]


def outcomes_of(out: Path) -> dict:
    """Every model's per-query outcomes in the fixture's run, per seed, read from its evaluation folders."""
    database = load_database(out / "data" / "eval" / "database.json")
    runs = {"base": ["base"], "start": ["start"], **{k: [f"{k}-s0", f"{k}-s1"] for k in ("sft", "repic", "faithful")}}
    return {label: [query_outcomes(out / "eval" / run, database) for run in names] for label, names in runs.items()}


@pytest.mark.slow
def test_claim_checks_are_kept_in_results_json_report_md_and_the_printout(quick):
    out, printed, results = quick
    outcomes = outcomes_of(out)
    recomputed = claim_checks(outcomes)
    # the verdicts of these very numbers (JSON turns the gaps' tuple into a list)
    assert results["checks"] == [json.loads(json.dumps(asdict(check))) for check in recomputed]
    # RePIC vs base on 5 caption F1s, OCT, VLT; vs SFT on 2 and 4 concepts; faithful vs RePIC on each retrieval
    # evaluation where an absent concept was offered (in a world this small, retrieval may find every true one)
    absent_rates = [cell for cell in outcomes["repic"][0] if cell.endswith(".absent_named")]
    assert absent_rates and len(recomputed) == 9 + len(absent_rates)
    page = (out / "report" / "report.md").read_text(encoding="utf-8")
    rows = markdown_rows(page, "## The claim, checked")
    assert [[html.unescape(row[0]), *row[1:]] for row in rows] == [
        [check.statement, check.repic, check.other,
         (check.verdict if check.holds else f"**{check.verdict}**") + (f" ({check.note})" if check.note else "")]
        for check in recomputed
    ]  # fmt: skip
    for check in recomputed:
        verdict = "does NOT hold" if check.verdict == "does not hold" else check.verdict
        note = f" ({check.note})" if check.note else ""
        assert f"{verdict} {' ' * (13 - len(verdict))}{check.statement}: {check.repic} vs {check.other}{note}" in printed


@pytest.mark.slow
def test_every_training_seed_is_kept_and_summarized_per_cell(quick):
    out, printed, results = quick
    assert results["seeds"] == [0, 1]
    for label in ("sft", "repic", "faithful"):
        assert [run["seed"] for run in results["per_seed"][label]] == [0, 1]
        runs = [{k: v for k, v in run.items() if k != "seed"} for run in results["per_seed"][label]]  # a copy
        for seed, run in enumerate(runs):  # each seed's numbers are its own evaluation's
            saved = json.loads((out / "eval" / f"{label}-s{seed}" / "model_result.json").read_text(encoding="utf-8"))
            assert run == saved["models"][0]
        assert runs[0] == model(results, label)  # the tables show the first seed
        summary = results["summaries"][label]["two.official"]
        values = [run["captions"]["two"]["official"]["f1"] for run in runs]
        mean = (values[0] + values[1]) / 2
        assert summary["values"] == pytest.approx(values) and summary["mean"] == pytest.approx(mean)
        # sample std of two values: |a - b| / sqrt(2)
        assert summary["std"] == pytest.approx(abs(values[0] - values[1]) / 2**0.5)
        assert (summary["minimum"], summary["maximum"]) == (pytest.approx(min(values)), pytest.approx(max(values)))
        assert summary["low"] <= summary["mean"] <= summary["high"]
    for label in ("base", "start"):  # made once: one value per cell
        assert len(results["summaries"][label]["oct"]["values"]) == 1 and label not in results["per_seed"]
    assert "Over training seeds 0, 1, %: mean ± std (min-max)" in printed


@pytest.mark.slow
def test_the_reported_warmup_command_remakes_the_start_model(quick, tmp_path):
    out, _, results = quick
    command = next(c for c in results["commands"] if c.startswith("repic train warmup "))
    args = shlex.split(command)[1:]
    args[args.index("--out") + 1] = str(tmp_path / "start")
    code, printed = run_repic(*args)
    assert code == 0, printed
    remade = load_file(tmp_path / "start" / "final" / "model.safetensors")
    original = load_file(out / "runs" / "start" / "final" / "model.safetensors")
    assert remade.keys() == original.keys()
    assert all(torch.equal(remade[name], original[name]) for name in original)


@pytest.mark.slow
def test_the_reported_caption_command_remakes_the_vlt_answers_in_the_recipes_box_style(quick, tmp_path):
    out, _, results = quick
    recipe = load_config(GRPO_RECIPE)
    assert recipe.data.box_style == "list"  # the tiny base's own format (see the recipe's comment)
    command = next(c for c in results["commands"] if c.startswith("repic caption "))
    assert f"--box-style {recipe.data.box_style}" in command
    args = shlex.split(command.split("#")[0])[1:]
    args[args.index("MODEL")] = str(out / "runs" / "repic-s0" / "final")
    args[args.index("--eval") + 1] = str(out / "data" / "eval" / "vlt.jsonl")
    args[args.index("--mode") + 1] = "auto"
    args[args.index("--out") + 1] = str(tmp_path / "vlt")
    code, printed = run_repic(*args)
    assert code == 0, printed
    remade = [json.loads(line) for line in (tmp_path / "vlt" / "answers.jsonl").read_text().splitlines()]
    shown = [json.loads(line) for line in (out / "eval" / "repic-s0" / "vlt.jsonl").read_text().splitlines()]
    assert [row["prediction"] for row in remade] == [row["prediction"] for row in shown]


@pytest.mark.slow
def test_predictions_score_the_same_with_repic_eval(quick, tmp_path):
    out, _, results = quick
    scored = tmp_path / "scores.json"
    files = [out / "eval" / "repic-s0" / f"{key}.jsonl" for key in ("two", "two_retrieval", "oct", "vlt")]
    code, printed = run_repic(
        "eval", *files, "--database", out / "data" / "eval" / "database.json", "--json", scored
    )
    assert code == 0, printed
    reports = json.loads(scored.read_text(encoding="utf-8"))["files"]
    repic = model(results, "repic")
    for report, key in zip(reports[:2], ("two", "two_retrieval"), strict=True):
        for mode in ("official", "strict"):
            expected = repic["captions"][key][mode]
            assert {k: report["captions"][mode][k] for k in expected} == expected
    assert reports[2]["recognition"] == repic["recognition"]
    assert reports[3]["localization"] == repic["localization"]


@pytest.mark.slow
def test_gallery_shows_every_model_for_each_shown_query(quick):
    out, _, _ = quick
    page = (out / "report" / "gallery.html").read_text(encoding="utf-8")
    for name in LABELS:
        assert f">{name}<" in page
    assert page.count("<mark") > 0  # concept names the models wrote are highlighted


@pytest.mark.slow
def test_a_second_run_reuses_every_stage_and_reports_the_same_numbers(quick, monkeypatch):
    out, _, results = quick

    def no_lane(*args, **kwargs):
        raise AssertionError("a second lane was started with nothing left for it to do")

    monkeypatch.setattr(pipeline_module, "SecondLane", no_lane)
    code, printed = run_repic("demo", "--quick", "--out", out, "--lanes", 2, *QUICK_ARGS)
    assert code == 0, printed
    for stage in STAGES:
        assert re.search(rf"\] {stage}: reused \(made earlier in [\d.]+ s\)$", printed, re.M), stage
    again = json.loads((out / "report" / "results.json").read_text(encoding="utf-8"))
    assert again["models"] == results["models"] and again["timings"] == results["timings"]
    assert again["per_seed"] == results["per_seed"] and again["summaries"] == results["summaries"]


@pytest.mark.slow
def test_a_moved_run_folder_keeps_its_stages_and_reads_nothing_from_where_it_was(quick, tmp_path):
    out, _, results = quick
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    code, printed = run_repic("demo", "--quick", "--out", moved, *QUICK_ARGS)
    assert code == 0, printed
    for stage in STAGES:
        assert re.search(rf"\] {stage}: reused", printed, re.M), stage
    assert json.loads((moved / "report" / "results.json").read_text(encoding="utf-8"))["models"] == results["models"]
    # stage keys and predictions name the run folder's files relative to it, never the old folder
    for path in [*(moved / STAGES_DIR).glob("*.json"), *(moved / "eval").rglob("*.jsonl")]:
        assert str(out) not in path.read_text(encoding="utf-8"), path
    page = (moved / "report" / "gallery.html").read_text(encoding="utf-8")
    shown = re.findall(r'<img src="([^"]+)"', page)
    assert shown and all((moved / "report" / src).is_file() for src in shown)


@pytest.mark.slow
def test_one_lane_gives_the_same_results_and_times_stages_in_turn(quick, tmp_path):
    _, _, two_lanes = quick
    code, printed = run_repic("demo", "--quick", "--out", tmp_path / "one", "--lanes", 1, *QUICK_ARGS)
    assert code == 0, printed
    one_lane = json.loads((tmp_path / "one" / "report" / "results.json").read_text(encoding="utf-8"))
    assert one_lane["models"] == two_lanes["models"] and list(one_lane["timings"]) == STAGES
    assert one_lane["per_seed"] == two_lanes["per_seed"]
    # in turn, the stages' sum is the run's time; side by side, the wall clock is reported beside it
    assert "wall_seconds" not in one_lane and two_lanes["wall_seconds"] > 0


def test_demo_refuses_a_folder_that_is_not_a_demo(tmp_path):
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    code, printed = run_repic("demo", "--quick", "--out", tmp_path)
    assert code == 2 and "holds no earlier demo" in printed
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "mine"  # nothing deleted


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps", "0"], "--steps is the number of GRPO steps and must be at least 1"),
        (["--world-size", "7"], "--world-size is the number of concepts and must be at least 8"),
        (["--seeds", "0,0"], "--seeds lists a seed twice"),
        (["--seeds", "0,x"], "--seeds takes whole numbers separated by commas"),
        (["--seeds", "-1"], "--seeds takes whole numbers from 0"),
        (["--seed", "-1"], "--seed takes whole numbers from 0"),
    ],
)
def test_bad_sizes_are_refused_with_what_to_do(args, message, tmp_path):
    code, printed = run_repic("demo", "--quick", "--out", tmp_path / "run", *args)
    assert code == 2 and message in printed
    assert not (tmp_path / "run").exists()  # refused before anything was written


# ------------------------------------------------------------------------------------------ stages
def test_a_stage_runs_once_and_is_skipped_while_its_key_is_unchanged(tmp_path):
    calls = []
    book = StageBook(tmp_path, say=lambda line: None)
    first = book.run("data", {"n": 1}, tmp_path / "data", lambda: calls.append(1))
    again = StageBook(tmp_path, say=lambda line: None).run(
        "data", {"n": 1}, tmp_path / "data", lambda: calls.append(2)
    )
    assert calls == [1]  # the second book found the record and did not run the action
    assert again.reused and again.token == first.token and not first.reused


def test_keys_name_the_run_folder_as_a_mark_and_records_made_before_are_reused(tmp_path):
    folder = tmp_path / "run"
    key = {"file": f"{folder}/data/train.jsonl", "other": f"{folder}2/x", "embedder": f"tower:{folder}/base"}
    book = StageBook(folder, say=lambda line: None)
    record = book.run("data", key, folder / "data", lambda: None)
    assert record.key == {"file": "$OUT/data/train.jsonl", "other": f"{folder}2/x", "embedder": "tower:$OUT/base"}
    # a record written with absolute paths (before keys were portable) is reused, then kept in the new form
    saved = json.loads((folder / STAGES_DIR / "data.json").read_text(encoding="utf-8"))
    (folder / STAGES_DIR / "data.json").write_text(json.dumps({**saved, "key": key}), encoding="utf-8")
    calls = []
    again = StageBook(folder, say=lambda line: None).run("data", key, folder / "data", lambda: calls.append(1))
    assert calls == [] and again.token == record.token
    assert json.loads((folder / STAGES_DIR / "data.json").read_text(encoding="utf-8"))["key"] == record.key


def test_a_changed_key_reruns_the_stage_on_a_cleared_folder_with_a_new_token(tmp_path):
    output = tmp_path / "data"

    def write(text: str):
        def action():
            output.mkdir(exist_ok=True)
            assert not (output / "old.txt").exists()  # the earlier output was removed first
            (output / f"{text}.txt").write_text(text, encoding="utf-8")

        return action

    first = StageBook(tmp_path, say=lambda line: None).run("data", {"n": 1}, output, write("old"))
    second = StageBook(tmp_path, say=lambda line: None).run("data", {"n": 2}, output, write("new"))
    assert not second.reused and second.token != first.token
    assert sorted(path.name for path in output.iterdir()) == ["new.txt"]


def test_redoing_a_stage_redoes_the_stages_that_read_it(tmp_path):
    def run_both(world_key: int) -> list[str]:
        ran = []
        book = StageBook(tmp_path, say=lambda line: None)
        world = book.run("world", {"n": world_key}, tmp_path / "world", lambda: ran.append("world"))
        book.run("data", {"world": world.token}, tmp_path / "data", lambda: ran.append("data"))
        return ran

    assert run_both(1) == ["world", "data"]
    assert run_both(1) == []  # nothing changed
    assert run_both(2) == ["world", "data"]  # a new world is a new token in the data stage's key


def test_an_interrupted_stage_leaves_no_record_and_runs_again(tmp_path):
    def fail():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        StageBook(tmp_path, say=lambda line: None).run("repic", {"n": 1}, tmp_path / "repic", fail)
    calls = []
    StageBook(tmp_path, say=lambda line: None).run(
        "repic", {"n": 1}, tmp_path / "repic", lambda: calls.append(1)
    )
    assert calls == [1]


def test_run_folder_is_new_empty_or_an_earlier_demo_and_fresh_clears_only_a_demo(tmp_path):
    open_run_folder(tmp_path / "new", fresh=False)  # a new folder becomes a demo folder
    assert (tmp_path / "new" / DEMO_FILE).is_file()
    (tmp_path / "new" / "world").mkdir()
    open_run_folder(tmp_path / "new", fresh=False)  # reuse keeps what is there
    assert (tmp_path / "new" / "world").is_dir()
    open_run_folder(tmp_path / "new", fresh=True)  # fresh clears an earlier demo
    assert sorted(path.name for path in (tmp_path / "new").iterdir()) == [DEMO_FILE]
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(RepicError, match="is a file"):
        open_run_folder(tmp_path / "file", fresh=True)


# ------------------------------------------------------------------------------------------ settings
@pytest.mark.parametrize(
    ("concepts", "train", "heldout", "eval_four", "train_two"),
    [
        (64, 48, 16, 32, 64),  # the full world's own size: unchanged
        (128, 96, 32, 64, 128),  # twice as many concepts: every scene total doubles
        (8, 4, 4, 4, 8),  # the smallest: 4 held out, 32 * 8 / 64 = 4 four-concept evaluation scenes
        (20, 15, 5, 10, 20),  # a quarter of 20 held out; 32 * 20 / 64 = 10
        (22, 16, 6, 11, 22),  # 22 / 4 = 5.5 rounds to 6 held out; 32 * 22 / 64 = 11
    ],
)
def test_world_size_is_the_number_of_concepts_a_quarter_held_out(
    concepts, train, heldout, eval_four, train_two
):
    world = scaled_world(concepts, FULL_WORLD)
    assert (world.n_train_concepts, world.n_heldout_concepts) == (train, heldout)
    assert (world.n_eval_four, world.n_train_two, world.scenes_per_train_concept) == (eval_four, train_two, 6)


def test_sft_sees_as_many_samples_as_grpo_and_both_start_from_the_warmed_up_model(tmp_path):
    settings = demo_settings(out=tmp_path)
    paths = DemoPaths(tmp_path)
    configs = training_configs(settings, paths)
    start, repic, sft = configs["start"], configs["repic-s0"], configs["sft-s0"]
    # GRPO: 400 steps x 4 prompts = 1600 samples; SFT: 16 rows per step -> 1600 / 16 = 100 steps
    assert (repic.optim.max_steps, repic.grpo.prompts_per_step) == (400, 4)
    assert (sft.optim.max_steps, sft.sft.rows_per_step) == (100, 16)
    assert repic.model.name_or_path == sft.model.name_or_path == str(tmp_path / "runs" / "start" / "final")
    assert repic.grpo.warmup.steps == 0  # the warm-up ran once, as the start stage
    # the start stage is the demo-tiny recipe's warm-up: 40 SFT steps over 64 samples at lr 3e-4
    assert (start.method, start.optim.max_steps, start.data.max_samples, start.optim.learning_rate) == (
        "sft",
        40,
        64,
        3e-4,
    )
    assert start.run.output_dir == str(tmp_path / "runs" / "start")


def test_each_training_seed_gets_its_runs_and_set_overrides_the_grpo_recipe_only(tmp_path):
    settings = demo_settings(out=tmp_path, seeds=(0, 1), faithful=True, recipe_overrides={"grpo.beta": 0.01})
    configs = training_configs(settings, DemoPaths(tmp_path))
    assert sorted(configs) == sorted(["with_warmup", "start", "repic-s0", "repic-s1", "sft-s0", "sft-s1",
                                      "faithful-s0", "faithful-s1"])
    # the world, the data and the start model are made once, with --seed; each run trains with its own seed
    assert configs["start"].run.seed == 0 and [configs[f"sft-s{s}"].run.seed for s in (0, 1)] == [0, 1]
    assert configs["repic-s1"].run.seed == 1 and configs["repic-s1"].run.output_dir == str(tmp_path / "runs" / "repic-s1")
    assert configs["repic-s1"].grpo.beta == configs["faithful-s0"].grpo.beta == 0.01  # --set: GRPO only
    # the faithful row: its reward and its data, the paper's row untouched
    assert configs["faithful-s0"].rewards.absent_name_cost == 1.0 and configs["repic-s0"].rewards.absent_name_cost == 0
    assert configs["faithful-s0"].data.train_file == str(tmp_path / "data-faithful" / "train.jsonl")
    assert configs["repic-s0"].data.train_file == str(tmp_path / "data" / "train.jsonl")
    cheaper = training_configs(demo_settings(out=tmp_path, faithful=True, faithful_cost=0.5), DemoPaths(tmp_path))
    assert cheaper["faithful-s0"].rewards.absent_name_cost == 0.5  # --faithful-cost
    with pytest.raises(RepicError, match="absent_name_cost must be a number in"):
        demo_settings(out=tmp_path / "new", faithful=True, faithful_cost=9.0)
    with pytest.raises(RepicError, match="unknown config key grpo.bta"):  # refused before anything is written
        demo_settings(out=tmp_path / "new", recipe_overrides={"grpo.bta": 1})
    assert not (tmp_path / "new").exists()


# ------------------------------------------------------------------------------------------ the claim
def cells(f1_rows: list[bool], oct_right: list[bool], vlt_hits: list[bool]) -> dict:
    """A model's outcomes: every caption evaluation with one concept per row (correct or none), OCT, VLT."""
    captions = caption_outcomes([["correct" if ok else None] for ok in f1_rows])
    table = {f"{key}.{mode}": captions for key in CAPTION_LABELS for mode in ("official", "strict")}
    return {**table, "oct": rate_outcomes(oct_right), "vlt": rate_outcomes(vlt_hits)}


def test_claim_checks_compare_repic_with_base_on_every_task_and_with_sft_on_multi_concept_f1():
    n = 40
    base = cells([False] * n, [True, False] * (n // 2), [False] * n)  # names nothing; OCT 50 %
    strong = cells([True] * n, [True] * n, [False] * n)  # names every concept; OCT 100 %; VLT as the base
    outcomes = {"base": [base], "start": [base], "sft": [strong, strong], "repic": [strong, strong]}
    verdicts = {check.statement: check.verdict for check in claim_checks(outcomes)}
    assert verdicts == {
        # F1 1.0 vs 0.0 in both seeds, whatever queries are drawn: the interval is [+100, +100]
        **{f"RePIC > base, {label} F1": "holds" for label in CAPTION_LABELS.values()},
        "RePIC > base, OCT accuracy": "holds",  # +50 points in each seed, far outside the noise of 40 answers
        "RePIC > base, VLT accuracy (IoU >= 0.5)": "does not hold",  # equal is not an improvement
        "RePIC > SFT, 2 concepts F1": "does not hold",  # the same outcomes: a gap of 0
        "RePIC > SFT, 4 concepts F1": "does not hold",
    }


def test_a_claim_that_fails_in_one_seed_or_within_its_interval_is_within_noise():
    n = 200
    base = cells([False] * n, [True] * 151 + [False] * 49, [False] * n)  # OCT 151 / 200 = 75.5 %
    one_more = cells([True] * n, [True] * 152 + [False] * 48, [False] * n)  # OCT 76.0 %: one answer more
    one_less = cells([True] * n, [True] * 150 + [False] * 50, [False] * n)  # OCT 75.0 %
    much_better = cells([True] * n, [True] * 190 + [False] * 10, [False] * n)  # OCT 95.0 %

    def oct_verdict(*repic_seeds: dict) -> tuple[str, str]:
        outcomes = {"base": [base], "start": [base], "sft": list(repic_seeds), "repic": list(repic_seeds)}
        check = next(c for c in claim_checks(outcomes) if c.statement == "RePIC > base, OCT accuracy")
        return check.verdict, check.note

    verdict, note = oct_verdict(one_more)
    # one answer in 200 (+0.5 points), positive in the one seed. Paired on the same queries, that answer is the
    # only difference, so a resample shows a gap of 0 (when it misses that query) or more: the low end is 0,
    # not above it
    assert verdict == "within noise" and note.startswith("gap +0.5 points; 95 % interval [+0.0, +")
    verdict, note = oct_verdict(much_better, one_less)  # +19.5 and -0.5 points: the mean is positive, one seed not
    assert verdict == "within noise" and "per seed +19.5, -0.5" in note
    assert oct_verdict(much_better, much_better)[0] == "holds"
    assert oct_verdict(one_less)[0] == "does not hold"  # a mean gap of -0.5 points


def test_module_doctests_pass():
    modules = (settings_module, evaluate_module, pipeline_module, claims_module, stages_module)
    assert all(doctest.testmod(module).failed == 0 for module in modules)
    assert sum(doctest.testmod(module).attempted for module in modules) >= 4  # the examples really ran


def test_absent_named_counts_only_offered_concepts_not_in_the_image():
    offered = {"image": "q.png", "concepts": ("<bo>",), "shown": ("<bo>", "<kim>")}
    rows = [
        CaptionRow(caption="<bo> sits next to <kim>.", **offered),  # names the absent <kim>: a hit
        CaptionRow(caption="Kim's friend <bo>.", **offered),  # the bare display name counts too
        CaptionRow(caption="<bo> alone; </kim> is no name.", **offered),  # closing form only: no hit
        CaptionRow(caption="<rex> waves.", **offered),  # <rex> was not offered: not counted here
    ]
    count = evaluate_module.absent_named(rows, {"<kim>": ["Kim"]})
    assert (count.hits, count.total) == (2, 4)


def test_gallery_rows_refuse_predictions_of_different_queries(tmp_path):
    for name, image in (("a", "one.png"), ("b", "two.png")):
        folder = tmp_path / name
        for key in evaluate_module.CAPTION_EVALUATIONS:
            row = {
                "task": "ict",
                "image_path": image,
                "concepts": ["<bo>"],
                "references": [],
                "prediction": "x",
                "question": "q",
            }
            (folder / f"{key}.jsonl").parent.mkdir(exist_ok=True)
            (folder / f"{key}.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(RepicError, match="do not answer the same queries"):
        evaluate_module.gallery_rows({"a": tmp_path / "a", "b": tmp_path / "b"}, per_evaluation=1)


def test_gallery_rows_match_queries_by_their_file_name_in_the_data_not_where_they_were_made(tmp_path):
    # a copied run folder: one model's predictions were made in the old folder, the other's in the new one
    for name, root in (("old", "/runs/old"), ("new", "/runs/new")):
        for key in evaluate_module.CAPTION_EVALUATIONS:
            row = {"task": "ict", "image": "scenes/heldout/x.png", "image_path": f"{root}/world/scenes/heldout/x.png",
                   "concepts": ["<bo>"], "references": [], "prediction": f"by {name}", "question": "q"}
            (tmp_path / name).mkdir(exist_ok=True)
            (tmp_path / name / f"{key}.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    rows = evaluate_module.gallery_rows({"old": tmp_path / "old", "new": tmp_path / "new"}, per_evaluation=1)
    assert len(rows) == len(evaluate_module.CAPTION_EVALUATIONS)
    assert rows[0].captions == {"old": "by old", "new": "by new"}


def test_quick_and_full_settings():
    full, quick = demo_settings(), demo_settings(quick=True, steps=5, seed=3)
    assert (full.grpo_steps, full.world.n_train_concepts, full.build.counts["ict_multi"]) == (400, 48, 500)
    assert (full.world.n_eval_single, full.world.n_eval_two, full.world.n_eval_four) == (96, 64, 32)
    assert (quick.grpo_steps, quick.world.n_heldout_concepts, quick.world.seed, quick.build.seed) == (
        5,
        4,
        3,
        3,
    )
    assert full.out == Path("repic-demo")
    assert demo_settings(lanes=1).lanes == 1 and full.lanes == min(2, settings_module.usable_cores())
    with pytest.raises(RepicError, match="--lanes is 1"):
        demo_settings(lanes=3)


def _sections(markdown: str, first: str, last: str) -> str:
    """The report's text from the heading ``first`` up to the heading ``last``."""
    return markdown[markdown.index(f"## {first}"):markdown.index(f"## {last}")]


def test_repic_report_on_the_demos_evaluations_gives_the_demos_tables(quick, tmp_path):
    """``repic report`` over the demo's evaluation folders (any user's models would be the same): the same
    tables as the demo's own report, the models, every seed and every interval; the claims asked for."""
    out, _, results = quick
    evaluations = out / "eval"
    models = [f"--model={label}=" + ",".join(str(evaluations / name) for name in names) for label, names in (
        ("base", ["base"]), ("start", ["start"]), ("sft", ["sft-s0", "sft-s1"]), ("repic", ["repic-s0", "repic-s1"]),
        ("faithful", ["faithful-s0", "faithful-s1"]))]
    code, printed = run_repic("report", tmp_path / "report", *models, "--claim", "repic>base", "--claim", "repic>sft",
                              "--seeds", "0,1")
    assert code == 0, printed
    made = json.loads((tmp_path / "report" / "results.json").read_text(encoding="utf-8"))
    for key in ("models", "seeds", "per_seed", "summaries"):
        assert made[key] == results[key], key
    ours = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    demos = (out / "report" / "report.md").read_text(encoding="utf-8")
    assert _sections(ours, "Models", "The claim, checked") == _sections(demos, "Models", "The claim, checked")
    # the claims: "repic > base" on every measure, as the demo states them; "repic > sft" on every measure
    demo_checks = {check["statement"]: check for check in results["checks"]}
    for check in made["checks"]:
        statement = check["statement"]
        if statement.startswith("repic > base, "):
            twin = demo_checks["RePIC > base, " + statement.removeprefix("repic > base, ")]
            assert {k: v for k, v in check.items() if k != "statement"} == {
                k: v for k, v in twin.items() if k != "statement"}
    assert sum(c["statement"].startswith("repic > sft, ") for c in made["checks"]) == 7  # 5 caption, OCT, VLT
    assert (tmp_path / "report" / "gallery.html").is_file() and (tmp_path / "report" / "seeds.png").is_file()
    assert "repic > base, 1 concept F1: " in printed


def test_repic_eval_model_evaluates_any_model_on_a_build_as_the_demo_does(quick, tmp_path):
    out, _, results = quick
    code, printed = run_repic("eval", "model", out / "runs" / "repic-s0" / "final", out / "data", "--out",
                              tmp_path / "mine", "--label", "repic", "--embedder", f"tower:{shipped_base_path()}")
    assert code == 0, printed
    mine = json.loads((tmp_path / "mine" / "model_result.json").read_text(encoding="utf-8"))["models"][0]
    theirs = next(row for row in results["per_seed"]["repic"] if row["seed"] == 0)
    assert mine["captions"] == theirs["captions"] and mine["recognition"] == theirs["recognition"]
    assert mine["localization"] == theirs["localization"]  # the model's own box style, read from its run
    again, said = run_repic("eval", "model", out / "runs" / "repic-s0" / "final", out / "data", "--out",
                            tmp_path / "mine")
    assert again == 2 and "--overwrite" in said


def test_ship_copies_a_demo_runs_repic_model_with_its_record(quick, tmp_path):
    """``python -m repic.world.ship RUN``: what makes the shipped tiny-repic, on a quick run."""
    from repic.inference.caption import trained_box_style
    from repic.world.ship import main as ship_main

    out, _, results = quick
    assert ship_main([str(out), "--out", str(tmp_path / "shipped")]) == 0
    shipped = tmp_path / "shipped"
    assert {"config.json", "model.safetensors", "tokenizer.json", "repic_run.json", "shipped_record.json"} <= {
        path.name for path in shipped.iterdir()}
    record = json.loads((shipped / "shipped_record.json").read_text(encoding="utf-8"))
    assert record["run"] == "repic-s0" and record["training_seed"] == 0 and record["box_style"] == "list"
    assert record["demo_results"] == next(row for row in results["per_seed"]["repic"] if row["seed"] == 0)
    assert record["rebuild"].startswith("repic demo --out DEMO_RUN --fresh")
    assert str(out) not in (shipped / "repic_run.json").read_text() + (shipped / "shipped_record.json").read_text()
    assert record["recipe"]["data"]["train_file"] == "DEMO_RUN/data/train.jsonl"  # no path of this machine travels
    assert trained_box_style(shipped) == "list"
    assert ship_main([str(tmp_path / "nowhere")]) == 1  # no finished model: a message, not a traceback
