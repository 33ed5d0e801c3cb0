"""``repic demo``: the whole RePIC loop in one command, with no arguments needed.

It builds (or reuses) the concept world and the data, makes the start model, post-trains it with RePIC
GRPO and trains the SFT baseline, evaluates base, start, SFT and RePIC on held-out concepts and writes a
report folder (``repic.world.demo.pipeline``). One line per stage start and end, with the seconds since the
start, and the training steps as they are logged; at the end the results table, the summary over training
seeds (``--seeds``; a one-seed run says where it falls in the shipped three-seed run instead), the verdict
of each part of the paper's claim, and the report's path. ``--quick`` runs the same stages at tiny sizes. Ctrl-C during
training stops with exit status 130; the same command then continues from the finished stages. The
library is imported inside the command, so other ``repic`` commands start fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ...cli.console import say
from ...cli.quiet import quiet_libraries

INTERRUPTED_EXIT = 130  # the shell's code for a process stopped by Ctrl-C


def demo_command(
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="Tiny sizes everywhere (a world of 12 concepts, 3 GRPO steps): "
            "the same stages in well under a minute.",
        ),
    ] = False,
    steps: Annotated[
        int | None,
        typer.Option("--steps", help="GRPO steps (default: 400, quick: 3); SFT gets as many samples."),
    ] = None,
    world_size: Annotated[
        int | None,
        typer.Option(
            "--world-size", help="Concepts in the world, a quarter of them held out (default: 64, quick: 12)."
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Run folder; the report goes to OUT/report.")] = Path(
        "repic-demo"
    ),
    reuse: Annotated[
        bool,
        typer.Option(
            "--reuse/--fresh",
            help="Reuse the stages an earlier run in OUT finished with the same "
            "settings, or start OUT afresh.",
        ),
    ] = True,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the world, the data and the start model (and the training seed "
                          "when --seeds is not given).")
    ] = 0,
    seeds: Annotated[
        str | None,
        typer.Option(
            "--seeds",
            help="Training seeds, comma-separated (e.g. 0,1,2): GRPO and SFT are trained once per seed, the report "
            "gives each seed's numbers, their mean, spread and 95 % interval, and judges the claim over them.",
        ),
    ] = None,
    faithful: Annotated[
        bool,
        typer.Option(
            "--faithful",
            help="Also train RePIC + faithful naming (naming an absent shown concept costs; training captions that "
            "show absent references), once per seed, beside the paper's RePIC.",
        ),
    ] = False,
    faithful_cost: Annotated[
        float | None,
        typer.Option(
            "--faithful-cost",
            help="What naming an absent shown concept costs the faithful row, against 1 for each present name "
            "(rewards.absent_name_cost; default 1.0; Omni-Persona charges 0.5).",
        ),
    ] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override a setting of the GRPO recipe (demo-tiny) for RePIC, its warm-up and the faithful row: "
            "section.key=value, repeatable (e.g. grpo.beta=0.01); SFT keeps its recipe.",
        ),
    ] = None,
    lanes: Annotated[
        int | None,
        typer.Option(
            "--lanes",
            help="2: share the models to train and evaluate between this process and a second one, by their cost; "
            "1: every stage in turn (default: 2 on a machine with 2 or more cores). Same results.",
        ),
    ] = None,
) -> None:
    """Run RePIC end to end on the built-in world and tiny model: data, training, evaluation, report."""
    from ...errors import RepicError
    from ...report import results_table, seeds_table
    from ..demo import DemoInterrupted, demo_settings, run_demo
    from ..demo.reference import shipped_range_lines

    try:
        from ...train.config import split_override

        training_seeds = None if seeds is None else parse_seeds(seeds)
        settings = demo_settings(
            quick=quick, steps=steps, world_size=world_size, out=out, seed=seed, lanes=lanes, seeds=training_seeds,
            faithful=faithful, recipe_overrides=dict(split_override(item) for item in sets or []),
            **({} if faithful_cost is None else {"faithful_cost": faithful_cost}),
        )
    except RepicError as exc:
        raise typer.BadParameter(str(exc)) from None
    quiet_libraries()
    command = " ".join(
        [
            "repic demo",
            *(["--quick"] if quick else []),
            *_option("--steps", steps),
            *_option("--world-size", world_size),
            "--out",
            str(out),
            *([] if reuse else ["--fresh"]),
            *_option("--seed", seed or None),
            *_option("--seeds", seeds),
            *(["--faithful"] if faithful else []),
            *_option("--faithful-cost", faithful_cost),
            *(part for item in sets or [] for part in ("--set", item)),
            *_option("--lanes", lanes),
        ]
    )
    try:
        outcome = run_demo(settings, fresh=not reuse, progress=say, command=command)
    except (DemoInterrupted, KeyboardInterrupt) as exc:
        say(
            f"stopped: {exc or 'interrupted'}; run the same command again to continue from the finished stages",
            "yellow",
        )
        sys.exit(INTERRUPTED_EXIT)
    say("")
    say(results_table(outcome.results))
    results = outcome.results
    say("")
    if len(results.seeds) > 1:
        say(seeds_table(results))
        say("")
    else:
        say(f"One training seed ({results.seeds[0]}): RePIC's numbers vary more between seeds than many of the gaps "
            "below; --seeds 0,1,2 trains each seed and judges the claim over them.", "yellow")
        for line in shipped_range_lines(results, settings):
            say(line)
        say("")
    seeds = ", ".join(map(str, results.seeds))
    over = f"mean over training seeds {seeds}" if len(results.seeds) > 1 else f"training seed {seeds}"
    say(f"The paper's claim on this run ({over}; the claimed model's number vs the other's, %):")
    for check in results.checks:
        colour = {"holds": "green", "within noise": "yellow"}.get(check.verdict, "red")
        verdict = "does NOT hold" if check.verdict == "does not hold" else check.verdict
        say(check.with_note(f"  {verdict:<13} {check.statement}: {check.repic} vs {check.other}"), colour)
    say("")
    say(f"report: {outcome.report.markdown}")


def parse_seeds(text: str) -> tuple[int, ...]:
    """``--seeds`` as a tuple of seeds (checked by ``demo_settings``).

    >>> parse_seeds("0, 1,2")
    (0, 1, 2)
    """
    from ...errors import RepicError

    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise RepicError(f"--seeds takes whole numbers separated by commas (e.g. 0,1,2), got {text!r}") from None


def _option(name: str, value: object) -> list[str]:
    return [] if value is None else [name, str(value)]
