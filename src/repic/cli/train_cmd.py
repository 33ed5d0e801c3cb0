"""``repic train``: RePIC GRPO post-training, the SFT baseline, and the shipped recipes.

``repic train grpo`` and ``repic train sft`` resolve a configuration (a recipe, then the convenience
options, then ``--set key=value`` overrides), call ``repic.train.train_grpo`` / ``train_sft`` and print
one line per logged step and a summary. ``repic train warmup`` takes a GRPO recipe and runs only its SFT
warm-up stage (``repic.train.train_warmup``), the start model ``repic demo`` shares between GRPO and SFT.
``--resume RUN`` continues a run from its newest checkpoint with the configuration saved in it (``--set``
can still change it, e.g. a higher ``optim.max_steps``). ``--max-steps`` is ``optim.max_steps``, and for
``warmup`` the warm-up's own ``grpo.warmup.steps``. A run stopped with Ctrl-C, whenever it comes, exits
with status 130 and prints what was kept and the command that resumes it. Under ``torchrun`` or
``accelerate launch`` only the main process prints. The trainers pull in TRL and torch, so they are
imported inside the commands.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import RepicError
from .console import say
from .quiet import quiet_libraries

app = typer.Typer(help="Post-train a model with RePIC GRPO, or train the SFT baseline.", no_args_is_help=True)

INTERRUPTED_EXIT = 130  # the shell's code for a process stopped by Ctrl-C

RecipeOption = Annotated[
    str | None,
    typer.Option("--recipe", help="A shipped recipe name (`repic train recipes`) or a YAML file."),
]
DataOption = Annotated[str | None, typer.Option("--data", help="Training samples (RePIC JSON/JSONL).")]
ImageRootOption = Annotated[
    str | None, typer.Option("--image-root", help="Folder the samples' image paths start from.")
]
OutOption = Annotated[str | None, typer.Option("--out", help="Run folder to create.")]
ModelOption = Annotated[str | None, typer.Option("--model", help="Model folder or hub id (default: the recipe's).")]
StepsOption = Annotated[int | None, typer.Option("--max-steps", help="Stop after this many optimizer steps.")]
HeldoutOption = Annotated[
    str | None,
    typer.Option("--heldout", help="A `repic data build` folder: measure held-out rewards before and after."),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a setting: section.key=value (repeatable), e.g. grpo.beta=0.04."),
]
ResumeOption = Annotated[
    Path | None, typer.Option("--resume", help="Continue the run in this folder from its newest checkpoint.")
]
OverwriteOption = Annotated[bool, typer.Option(
    "--overwrite", help="Replace the run in a non-empty run folder; the earlier run is kept in OUT.previous until "
                        "the new one finishes (a second --overwrite keeps the last finished run there).")]
QuietOption = Annotated[bool, typer.Option("--quiet", help="Print only the summary.")]


def _say_on_main(text: str, style: str = "") -> None:
    """``console.say`` on the main process only: under ``accelerate launch`` every process runs the command."""
    from ..train.processes import is_main_process  # imports nothing: safe even after an interrupted import

    if is_main_process():
        say(text, style)


def _options(
    method: str, *, data: str | None, image_root: str | None, out: str | None, model: str | None,
    max_steps: int | None, heldout: str | None,
) -> dict[str, object]:
    """The convenience options as dotted config keys (``--set`` overrides come after them).

    The warm-up stage takes its length from ``grpo.warmup.steps``, not ``optim.max_steps`` (the GRPO stage's),
    so that is what ``--max-steps`` sets for ``repic train warmup``.
    """
    if method == "warmup" and max_steps is not None and max_steps < 1:
        raise RepicError(f"--max-steps must be at least 1 (got {max_steps})")
    pairs = {
        "data.train_file": data,
        "data.image_root": image_root,
        "run.output_dir": out,
        "model.name_or_path": model,
        "grpo.warmup.steps" if method == "warmup" else "optim.max_steps": max_steps,
        "heldout.build": heldout,
    }
    return {key: value for key, value in pairs.items() if value is not None}


def _run(method: str, recipe: str | None, options: dict[str, object], sets: list[str] | None,
         resume: Path | None, overwrite: bool, quiet: bool) -> None:
    from ..train.config import load_config

    quiet_libraries()
    if method == "warmup" and resume is not None:
        raise RepicError("a warm-up run is short and cannot be resumed; run it again with --overwrite")
    if resume is not None:
        from ..train.run_folder import RunFolder

        folder = RunFolder.existing(resume)  # says what a run folder is, rather than "no such recipe"
        options = {**options, "run.output_dir": str(folder.path)}
        config = load_config(folder.config_path, list(sets or []), values=options, method=method)
    else:
        config = load_config(recipe or _DEFAULT_RECIPES[method], list(sets or []), values=options,
                             method=_RECIPE_METHOD[method])
    if method == "grpo":
        from ..train.grpo import train_grpo as train
    elif method == "warmup":
        from ..train.grpo import train_warmup

        def train(config, *, resume, overwrite, progress):  # resuming was refused above
            return train_warmup(config, overwrite=overwrite, progress=progress)
    else:
        from ..train.sft import train_sft as train
    progress = None if quiet else _say_on_main
    result = train(config, resume=resume is not None, overwrite=overwrite, progress=progress)
    if not result.finished:
        from ..train.session import kept_message

        kept = kept_message(result.previous_run)
        _say_on_main(f"interrupted after step {result.steps}; resume with: {result.resume_command}{kept}", "yellow")
        sys.exit(INTERRUPTED_EXIT)
    _say_on_main(f"run folder: {result.run_dir}")
    _say_on_main(f"model: {result.final_dir}  ({result.steps} steps, {result.wall_seconds:.1f} s)")
    if result.heldout_before is not None or result.heldout_after is not None:
        before, after = result.heldout_before or {}, result.heldout_after or {}
        _say_on_main("held-out mean reward per task (before -> after):")
        for task in dict.fromkeys([*before, *after]):
            _say_on_main(f"  {task:<10} {_number(before.get(task))} -> {_number(after.get(task))}")


def _say_interrupted(exc: KeyboardInterrupt, *, said: bool) -> None:
    """What a Ctrl-C that stopped the run at once did; the library has said it already unless ``--quiet``."""
    message = getattr(exc, "message", None)  # a ``RunInterrupted``: the run folder was set up
    if message is None:
        _say_on_main("interrupted before the run folder was set up: nothing was written or moved; run the "
                     "command again", "yellow")
    elif not said:
        _say_on_main(message, "yellow")


def _number(value: float | None) -> str:
    return "  -  " if value is None else f"{value:.3f}"


_DEFAULT_RECIPES = {"grpo": "demo-tiny", "sft": "sft-demo-tiny", "warmup": "demo-tiny"}
_RECIPE_METHOD = {"grpo": "grpo", "sft": "sft", "warmup": "grpo"}  # the warm-up is part of a GRPO recipe


def _training_command(method: str, summary: str):
    """The ``repic train METHOD`` command: both methods take the same options and differ only in the
    trainer ``_run`` starts, so one definition serves both."""

    def command(
        recipe: RecipeOption = None,
        data: DataOption = None,
        image_root: ImageRootOption = None,
        out: OutOption = None,
        model: ModelOption = None,
        max_steps: StepsOption = None,
        heldout: HeldoutOption = None,
        sets: SetOption = None,
        resume: ResumeOption = None,
        overwrite: OverwriteOption = False,
        quiet: QuietOption = False,
    ) -> None:
        options = _options(method, data=data, image_root=image_root, out=out, model=model, max_steps=max_steps,
                           heldout=heldout)
        try:  # Ctrl-C may come at any moment, importing the trainers included
            _run(method, recipe, options, sets, resume, overwrite, quiet)
        except KeyboardInterrupt as exc:
            _say_interrupted(exc, said=not quiet)
            sys.exit(INTERRUPTED_EXIT)

    command.__doc__ = f"{summary} (default recipe: {_DEFAULT_RECIPES[method]})."
    command.__name__ = f"{method}_command"
    return command


app.command("grpo")(
    _training_command("grpo", "RePIC post-training with GRPO on the verifiable rewards")
)
app.command("sft")(
    _training_command("sft", "The SFT baseline: fine-tune on reference captions that name the concepts")
)
app.command("warmup")(
    _training_command("warmup", "Only the SFT warm-up stage of a GRPO recipe; its final/ is the model GRPO "
                      "starts from (then pass it as --model with --set grpo.warmup.steps=0)")
)


@app.command("recipes")
def recipes_command() -> None:
    """List the shipped recipes with the first line of each."""
    from ..train.config import shipped_recipes

    for name, path in sorted(shipped_recipes().items()):
        first = next((line.lstrip("# ").strip() for line in path.read_text(encoding="utf-8").splitlines()
                      if line.startswith("#")), "")
        _say_on_main(f"{name:<26} {first}")


@app.command("config")
def config_command(
    recipe: RecipeOption = None,
    method: Annotated[str, typer.Option("--method", help="grpo or sft (picks the default recipe).")] = "grpo",
    sets: SetOption = None,
) -> None:
    """Print the resolved configuration of a recipe with overrides, as the run would save it."""
    import yaml

    from ..train.config import config_to_dict, load_config

    config = load_config(recipe or _DEFAULT_RECIPES.get(method, "demo-tiny"), list(sets or []), method=method)
    say(yaml.safe_dump(config_to_dict(config), sort_keys=False))
