"""``repic data synth``: generate the seeded synthetic concept world (``repic.world.synthetic``).

The command parses its options into a ``WorldConfig``, prints progress lines per rendering stage (``references:
40/128``, as other commands print theirs, so a log shows them too) and prints the world's splits. It is merged into ``repic data`` by ``repic.world.cli.register``.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from ...cli.console import console, say
from ...cli.data_cmd import OutOpt, SeedOpt, parse_key_counts
from ...progress import counted_stages
from ..synthetic import generate_world
from ..world_config import WorldConfig

commands = typer.Typer()


@commands.command()
def synth(
    out: OutOpt,
    seed: SeedOpt = 0,
    train_concepts: Annotated[int | None, typer.Option("--train-concepts", help="Training concepts.")] = None,
    heldout_concepts: Annotated[
        int | None, typer.Option("--heldout-concepts", help="Held-out concepts.")
    ] = None,
    scenes: Annotated[
        list[str] | None,
        typer.Option(
            "--scenes",
            help="Scene counts as KEY=N (repeat, or comma-separate): scenes_per_train_concept, n_train_two, "
            "n_train_four, n_train_negative, n_eval_single, n_eval_two, n_eval_four, n_eval_negative.",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an earlier collection in OUT.")
    ] = False,
) -> None:
    """Generate a seeded synthetic world of concepts and scenes (a collection folder)."""
    settings = {"seed": seed, **parse_key_counts(scenes or [], "--scenes", "n_train_two=64")}
    if train_concepts is not None:
        settings["n_train_concepts"] = train_concepts
    if heldout_concepts is not None:
        settings["n_heldout_concepts"] = heldout_concepts
    config = WorldConfig.from_dict(settings, where="repic data synth options")
    started = time.perf_counter()
    collection = generate_world(out, config, counted_stages(say), overwrite=overwrite)
    elapsed = time.perf_counter() - started
    table = Table(title=Text(str(collection.root)))
    for column in ("split", "concepts", "single", "two", "four", "negative"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split, tags in collection.splits.items():
        kinds = [
            str(len(collection.scenes_in(split, kind))) for kind in ("single", "two", "four", "negative")
        ]
        table.add_row(split, str(len(tags)), *kinds)
    console.print(table)
    size = sum(path.stat().st_size for path in collection.root.rglob("*") if path.is_file())
    say(
        f"wrote {len(collection.concepts)} concepts and {len(collection.scenes)} scenes in {elapsed:.1f} s, "
        f"{size / 1e6:.1f} MB"
    )
