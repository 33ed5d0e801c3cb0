"""``repic data``: synthesize a concept world, import concepts, build RePIC samples, inspect sample files.

Each command parses its arguments, calls ``repic.data`` (``synthetic``, ``importers``, ``tasks``,
``samples``) and prints; the rules live in the library. Sample counts are printed as a task mix table;
notices (what a builder or importer had to leave out) are printed in yellow, so nothing is skipped
unseen. User errors exit with status 2 (see ``repic.cli``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from ..data.collection import load_collection
from ..data.importers import ImportOptions, ImportResult, import_database, import_folders, import_samples
from ..data.samples import load_samples, task_mix
from ..data.tasks import DEFAULT_COUNTS, DEFAULT_EVAL_COUNTS, BoxSpace, BuildConfig
from ..data.tasks import build as build_folder
from ..errors import RepicError
from ..records import Sample
from .console import console, say
from .options import DatabaseImageRootOpt

app = typer.Typer(
    help="Make RePIC training data: a synthetic world, imports, sample builds.", no_args_is_help=True
)
import_app = typer.Typer(
    help="Import concepts (photo folders, a database.json) or an official RePIC training file.",
    no_args_is_help=True,
)
app.add_typer(import_app, name="import")


OutOpt = Annotated[Path, typer.Option("--out", help="Folder to write (new or empty).", show_default=False)]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of every random draw.", min=0, max=2**32 - 1)]
ImageRootOpt = Annotated[Path | None, typer.Option("--image-root", help="Folder the image paths start from.")]
BoxesOpt = Annotated[
    Path | None, typer.Option("--boxes", help="Boxes: a JSON list, or a CSV image,concept,x1,y1,x2,y2.")
]
HeldoutOpt = Annotated[
    list[str] | None, typer.Option("--heldout", help="A held-out concept (repeat); default: a seeded share.")
]
HeldoutRatioOpt = Annotated[float, typer.Option("--heldout-ratio", help="Share of concepts held out.")]
ReferencesOpt = Annotated[
    int, typer.Option("--references", help="Reference images per concept; the rest are scenes.")
]
CopyOpt = Annotated[
    bool, typer.Option("--copy", help="Copy the images into the collection (default: in place).")
]
ImportOverwriteOpt = Annotated[
    bool, typer.Option("--overwrite", help="Replace an earlier import in OUT (kept if this one fails).")
]


def _notices(notices: Sequence[str]) -> None:
    for notice in notices:
        say(f"notice: {notice}", "yellow")


def parse_key_counts(items: Sequence[str], option: str, example: str) -> dict[str, int]:
    """``["a=1", "b=2,c=3"]`` -> ``{"a": 1, "b": 2, "c": 3}``: the KEY=N syntax of --scenes and --counts."""
    pairs: dict[str, int] = {}
    for item in (part.strip() for entry in items for part in entry.split(",")):
        key, _, number = item.partition("=")
        if not key.strip() or not number.strip().isdigit():
            raise RepicError(
                f"{option} {item!r} is not KEY=N with N a whole number; write e.g. {option} {example}"
            )
        pairs[key.strip()] = int(number)
    return pairs


def _task_table(title: str, samples: Sequence[Sample]) -> Table:
    table = Table(title=Text(title))
    for column in ("task", "official", "samples", "share", "images/sample", "balance"):
        table.add_column(column, justify="left" if column in ("task", "official", "balance") else "right")
    for row in task_mix(samples):
        share, images = f"{row.share:.0%}", f"{row.images_per_sample:.1f}"
        table.add_row(row.task, row.official, str(row.count), share, images, row.detail)
    return table


@app.command()
def build(
    concepts: Annotated[Path, typer.Option("--concepts", help="A collection folder (from synth or import).")],
    out: OutOpt,
    seed: SeedOpt = 0,
    counts: Annotated[
        list[str] | None,
        typer.Option(
            "--counts",
            help="Training samples per task as TASK=N; tasks left out keep their default "
            f"({', '.join(f'{k}={v}' for k, v in DEFAULT_COUNTS.items())}).",
        ),
    ] = None,
    eval_counts: Annotated[
        list[str] | None,
        typer.Option("--eval-counts", help="Held-out OCT / VLT samples, e.g. oct=200,vlt=100."),
    ] = None,
    oct_positive_ratio: Annotated[
        float, typer.Option("--oct-positive-ratio", help="Share of OCT 'yes'.")
    ] = 0.5,
    vlt_category_ratio: Annotated[
        float, typer.Option("--vlt-category-ratio", help="Share of VLT questions naming the category.")
    ] = 0.3,
    ict_absent_references: Annotated[
        float,
        typer.Option(
            "--ict-absent-references",
            help="Share of single-concept ICT samples that also show an absent concept's reference "
            "(a lookalike where there is one; not the paper's, which is 0).",
        ),
    ] = 0.0,
    min_caption_chars: Annotated[
        int,
        typer.Option("--min-caption-chars", help="The ICT reward's minimum that SFT captions must reach."),
    ] = 100,
    box_space: Annotated[
        str, typer.Option("--box-space", help="VLT box pixels: resized (Qwen2.5-VL), original, relative1000.")
    ] = "resized",
    min_pixels: Annotated[int, typer.Option("--min-pixels", help="The processor's min_pixels.")] = 3136,
    max_pixels: Annotated[int, typer.Option("--max-pixels", help="The processor's max_pixels.")] = 12845056,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier build in OUT.")] = False,
) -> None:
    """Build training samples, SFT captions and held-out evaluation sets from a collection."""
    config = BuildConfig(
        seed=seed,
        counts={**DEFAULT_COUNTS, **parse_key_counts(counts or [], "--counts", "oct=600,vlt=400")},
        eval_counts={**DEFAULT_EVAL_COUNTS, **parse_key_counts(eval_counts or [], "--eval-counts", "oct=200")},
        oct_positive_ratio=oct_positive_ratio,
        vlt_category_ratio=vlt_category_ratio,
        ict_absent_references=ict_absent_references,
        min_caption_chars=min_caption_chars,
        box_space=BoxSpace(box_space, min_pixels, max_pixels),
    )
    started = time.perf_counter()
    built = build_folder(load_collection(concepts), out, config, overwrite=overwrite)
    console.print(_task_table(str(out / "train.jsonl"), built.train))
    evaluation = ", ".join(f"{name} {len(rows)}" for name, rows in built.evaluation.items()) or "none"
    low, high = built.caption_chars
    say(f"sft captions: {len(built.sft)}, {low}-{high} characters")
    say(f"evaluation (held-out concepts): {evaluation}")
    _notices(built.notices)
    say(f"built {out} in {time.perf_counter() - started:.1f} s")


@app.command()
def inspect(
    path: Annotated[Path, typer.Argument(help="A RePIC sample file (.json or .jsonl).")],
    image_root: ImageRootOpt = None,
) -> None:
    """Check a sample file (every row; every image opened and decoded) and print its task mix."""
    samples = load_samples(path, image_root, decode_images=True)
    if not samples:
        raise RepicError(f"{path} holds no samples; a sample file needs at least one row")
    console.print(_task_table(f"{path}: {len(samples)} samples, every image decodes", samples))


def _imported(result: ImportResult) -> None:
    collection = result.collection
    splits = ", ".join(f"{split} {len(tags)}" for split, tags in collection.splits.items())
    say(
        f"imported {len(collection.concepts)} concepts ({splits}) and {len(collection.scenes)} scenes "
        f"into {collection.root}"
    )
    _notices(result.notices)


@import_app.command("folders")
def import_folders_command(
    root: Annotated[Path, typer.Argument(help="Folder with one sub-folder of photos per concept.")],
    out: OutOpt,
    category: Annotated[
        str | None, typer.Option("--category", help="Category of folders without category.txt.")
    ] = None,
    references: ReferencesOpt = 1,
    boxes: BoxesOpt = None,
    heldout: HeldoutOpt = None,
    heldout_ratio: HeldoutRatioOpt = 0.25,
    seed: SeedOpt = 0,
    copy: CopyOpt = False,
    overwrite: ImportOverwriteOpt = False,
) -> None:
    """Import ROOT/<concept>/ photo folders (Yo'LLaVA, MyVLM, DreamBooth layouts) as a collection."""
    options = ImportOptions(references, boxes, heldout, heldout_ratio, seed, copy, overwrite)
    _imported(import_folders(root, out, category=category, options=options))


@import_app.command("database")
def import_database_command(
    database: Annotated[Path, typer.Argument(help="A RAP / RePIC database.json.")],
    out: OutOpt,
    database_image_root: DatabaseImageRootOpt = None,
    references: ReferencesOpt = 1,
    boxes: BoxesOpt = None,
    heldout: HeldoutOpt = None,
    heldout_ratio: HeldoutRatioOpt = 0.25,
    seed: SeedOpt = 0,
    copy: CopyOpt = False,
    overwrite: ImportOverwriteOpt = False,
) -> None:
    """Import the concepts of a RAP / RePIC database.json as a collection."""
    options = ImportOptions(references, boxes, heldout, heldout_ratio, seed, copy, overwrite)
    _imported(import_database(database, out, image_root=database_image_root, options=options))


@import_app.command("samples")
def import_samples_command(
    path: Annotated[Path, typer.Argument(help="An official RePIC training file (.json or .jsonl).")],
    out: OutOpt,
    image_root: ImageRootOpt = None,
    overwrite: ImportOverwriteOpt = False,
) -> None:
    """Check an official RePIC training file and write it as a build folder (train.jsonl + build.json)."""
    folder, samples = import_samples(path, out, image_root=image_root, overwrite=overwrite)
    console.print(_task_table(str(folder / "train.jsonl"), samples))
