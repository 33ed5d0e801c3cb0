"""``repic eval model`` and ``repic report``: the demo's evaluation and report for any models.

``repic eval model MODEL BUILD --out DIR`` answers every evaluation of a ``repic data build`` folder
(captions with given and retrieved concepts, OCT, VLT) and scores it (``repic.evaluate.models``);
``repic report OUT --model LABEL=DIR ...`` turns such folders into the report the demo writes: tables in
both scorer modes, claims between named models over their seeds, plots and the gallery
(``repic.report.compare``). A user compares a 7B base with its RePIC run with two commands each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import RepicError
from ..outputs import replace_folder
from .console import say


def eval_model_command(
    model: Annotated[str, typer.Argument(help="Model folder, hub id, LoRA adapter folder, tiny-repic or tiny-base.",
                                         show_default=False)],
    build: Annotated[Path, typer.Argument(help="A `repic data build` folder (its eval/ files and database.json).",
                                          show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="Folder for the predictions and scores.", show_default=False)],
    label: Annotated[str | None, typer.Option("--label", help="The model's name in reports (default: the --out "
                                                                "folder's name).", show_default=False)] = None,
    description: Annotated[str, typer.Option("--description", help="One line saying what the model is.")] = "",
    embedder: Annotated[str, typer.Option("--embedder", help="Retrieval embedder: builtin, tower:MODEL_DIR, or a "
                                                             "CLIP / SigLIP hub id or folder.")] = "builtin",
    top_k: Annotated[int, typer.Option("--top-k", help="Concepts retrieved per query.")] = 2,
    box_style: Annotated[str | None, typer.Option(
        "--box-style", metavar="json|list", help="VLT answer instruction (default: the style the model was "
                                                 "trained with, else json).", show_default=False)] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="New tokens per answer.")] = 128,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Prompts per generation batch.")] = 16,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier evaluation in --out.")] = False,
) -> None:
    """Evaluate a model on a build's held-out files as the demo does (captions, retrieval, OCT, VLT)."""
    from ..evaluate.models import RESULT_FILE, EvalSettings, evaluate_model
    from ..prompts import BOX_STYLES

    if box_style is not None and box_style not in BOX_STYLES:
        raise RepicError(f"--box-style must be one of {', '.join(BOX_STYLES)}, not {box_style!r}")
    if not (build / "eval" / "database.json").is_file():
        raise RepicError(f"{build} holds no eval/database.json, so it is not a `repic data build` folder; make one "
                         "with `repic data build --concepts WORLD --out DIR`")
    if top_k < 1 or max_new_tokens < 1 or batch_size < 1:
        raise RepicError("--top-k, --max-new-tokens and --batch-size must be at least 1")
    settings = EvalSettings(max_new_tokens=max_new_tokens, batch_size=batch_size, top_k=top_k, embedder=embedder,
                            box_style=box_style)
    name = label or out.absolute().name
    with replace_folder(out, marker=RESULT_FILE, inputs=[build], overwrite=overwrite) as staging:
        result = evaluate_model(model, build, staging, label=name, description=description, settings=settings,
                                progress=say)
    f1 = {key: caption.official.f1 for key, caption in result.captions.items()}
    say(f"{name}: caption F1 (official) " + ", ".join(f"{key} {100 * value:.1f}" for key, value in f1.items())
        + f"; OCT {100 * result.recognition.accuracy:.1f}; VLT {100 * result.localization.accuracy:.1f}")
    say(f"wrote {out} (`repic report REPORT --model {name}={out}` puts it in a report)")


def report_command(
    out: Annotated[Path, typer.Argument(help="The report folder to write (replaced if it holds a report).",
                                        show_default=False)],
    model: Annotated[list[str], typer.Option(
        "--model", help="LABEL=DIR[,DIR...]: a model and its `repic eval model` folders, one per training seed; "
                        "repeatable, in table order.", show_default=False)],
    claim: Annotated[list[str] | None, typer.Option(
        "--claim", help="BETTER>OTHER: judge 'BETTER scores above OTHER' on every measure, over the seeds; "
                        "repeatable.", show_default=False)] = None,
    seeds: Annotated[str | None, typer.Option(
        "--seeds", help="The training seeds of a model's folders, comma-separated (default 0, 1, ...).",
        show_default=False)] = None,
    database: Annotated[Path | None, typer.Option(
        "--database", help="The evaluation's database.json (default: the one the first folder was scored with).",
        show_default=False)] = None,
    title: Annotated[str, typer.Option("--title", help="The report's title.")] = "RePIC comparison",
    gallery: Annotated[int, typer.Option("--gallery", help="Queries per evaluation in the gallery.")] = 4,
) -> None:
    """Write the demo's report (tables, claims over seeds, plots, gallery) for any evaluated models."""
    from ..concepts.database import load_database
    from ..evaluate.models import evaluation_database
    from ..report import results_table, seeds_table, write_report
    from ..report.compare import compare_models, parse_claim, parse_model

    runs: dict[str, list[Path]] = {}
    for spec in model:
        label, folders = parse_model(spec)
        if label in runs:
            raise RepicError(f"--model {label} is given twice; give each model once, its seeds comma-separated")
        runs[label] = folders
    try:
        seed_list = None if seeds is None else [int(seed) for seed in seeds.split(",") if seed.strip()]
    except ValueError:
        raise RepicError(f"--seeds {seeds!r} is not a comma-separated list of whole numbers, e.g. 0,1,2") from None
    if gallery < 0:
        raise RepicError(f"--gallery must not be negative (got {gallery})")
    first = next(iter(runs.values()))[0]
    db = load_database(database) if database is not None else evaluation_database(first)
    results, rows = compare_models(runs, db, claims=[parse_claim(spec) for spec in claim or []], seeds=seed_list,
                                   title=title, gallery_per_evaluation=gallery)
    written = write_report(out, results, gallery_rows=rows)
    say(results_table(results))
    if len(results.seeds) > 1:
        say(seeds_table(results))
    for check in results.checks:
        colour = {"holds": "green", "within noise": "yellow"}.get(check.verdict, "red")
        say(check.with_note(f"  {check.verdict:<14} {check.statement}: {check.repic} vs {check.other}"), colour)
    say(f"report: {written.markdown}")
