"""``repic models build-tiny | pretrain-tiny | probe``: make and measure the built-in tiny model.

``build-tiny`` writes the randomly initialised model (``repic.world.tiny``), ``pretrain-tiny`` rebuilds the
shipped base from scratch (``repic.world.pretrain``), ``probe`` measures a model on a world's held-out concepts
(``repic.world.probe``). Torch and transformers are imported inside the commands, so other ``repic`` commands
start without paying for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ...cli.console import say
from ...cli.quiet import quiet_libraries
from ...errors import RepicError

commands = typer.Typer()  # merged into ``repic models`` by ``repic.world.cli.register``


def _read_corpus(path: Path) -> list[str]:
    """One document per non-blank line of a UTF-8 text file."""
    if not path.is_file():
        raise RepicError(
            f"corpus file not found: {path.resolve()}. Pass a UTF-8 text file, one document per line"
        )
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise RepicError(f"{path} is not UTF-8 text ({exc}); re-save it as UTF-8") from exc
    texts = [line for line in lines if line.strip()]
    if not texts:
        raise RepicError(
            f"{path} has no text: write the captions and prompts the model will read, one per line"
        )
    return texts


@commands.command("build-tiny")
def build_tiny(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the model to.", show_default=False)],
    corpus: Annotated[
        Path | None,
        typer.Option(
            "--corpus",
            help="UTF-8 text, one document per line, to train the tokenizer on "
            "(default: a generic corpus of RePIC-style prompts and captions).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random initial weights.")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing folder.")] = False,
) -> None:
    """Build the tiny Qwen2.5-VL-architecture model (random weights) with its tokenizer and processor."""
    from ..tiny import TinyModelConfig, build_tiny_model
    from ..tokenizer import builtin_corpus

    texts = _read_corpus(corpus) if corpus is not None else builtin_corpus()
    folder = build_tiny_model(out, texts=texts, config=TinyModelConfig(seed=seed), overwrite=overwrite)
    size = sum(path.stat().st_size for path in folder.iterdir() if path.is_file())
    say(f"built the tiny model in {folder} ({size / 1e6:.1f} MB on disk)")
    say(f"inspect it with `repic models info {folder}`")


@commands.command("pretrain-tiny")
def pretrain_tiny_command(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the pretrained model to.", show_default=False)],
    world: Annotated[
        Path | None,
        typer.Option(
            "--world",
            help="An existing synthetic world (`repic data synth DIR`); default: generate the default world "
            "of --world-seed in the work folder.",
        ),
    ] = None,
    world_seed: Annotated[int, typer.Option("--world-seed", help="Seed of the generated world.")] = 0,
    steps: Annotated[
        int | None,
        typer.Option(
            "--steps",
            help="Optimizer steps of all phases, one fresh batch each; the copy, vision and decision phases keep "
            "their shares (900, 500 and 400 of the default 2900).",
        ),
    ] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Rows per step (default 32).")] = None,
    learning_rate: Annotated[
        float | None, typer.Option("--lr", help="Peak learning rate, cosine decay (default 1e-3).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the rows, the initial weights and training.")] = 0,
    extra_scenes: Annotated[
        int | None,
        typer.Option("--extra-scenes", help="Training-split scenes rendered beyond the world's (default 3000)."),
    ] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="Torch CPU threads (default 1).")] = None,
    vision_steps: Annotated[
        int | None,
        typer.Option(
            "--vision-steps",
            help="Steps of the vision tower's own pretraining before the LM's (default 1500; 0: none, the "
            "tower then learns through the LM's loss in the vision phase).",
        ),
    ] = None,
    vision_from: Annotated[
        Path | None,
        typer.Option("--vision-from", help="Reuse the pretrained vision tower of this model folder instead of "
                     "pretraining one (same sizes)."),
    ] = None,
    finish_from: Annotated[
        Path | None,
        typer.Option("--finish-from", help="A model this command pretrained: keep its tower and curriculum and run "
                     "only the final stages on it (see --stages).", show_default=False),
    ] = None,
    stages: Annotated[
        str | None,
        typer.Option("--stages", help="The final stages to run, comma-separated, in order (default: all of "
                     "decision-stage,matching,recovery; 'none': no final stage).", show_default=False),
    ] = None,
    skill_checks: Annotated[
        int,
        typer.Option(
            "--skill-checks", "--copy-checks",
            help="Greedy checks during training of copy accuracy on fresh names and object category accuracy "
            "on held-out views (0: none).",
        ),
    ] = 10,
    work: Annotated[
        Path | None, typer.Option("--work", help="Keep intermediate files here (default: a temporary folder).")
    ] = None,
    probe: Annotated[
        bool, typer.Option("--probe/--no-probe", help="Measure the saved model on the held-out concepts.")
    ] = True,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out folder.")] = False,
) -> None:
    """Pretrain the tiny model on generic tasks of a world's training split (TRL SFTTrainer, CPU)."""
    import time

    from ..pretrain import FINAL_STAGES, RECORD_FILE, PretrainConfig, pretrain_tiny
    from ..probe import ProbeConfig, probe_table
    from ..vision import VisionPretrainConfig
    from ..world_config import WorldConfig

    given = {"steps": steps, "batch_size": batch_size, "learning_rate": learning_rate, "extra_scenes": extra_scenes,
             "threads": threads}
    if steps is not None:  # the vision and copy phases keep their share of the default schedule
        default = PretrainConfig()
        given["vision_phase_steps"] = round(steps * default.vision_phase_steps / default.steps)
        given["copy_phase_steps"] = round(steps * default.copy_phase_steps / default.steps)
        given["decision_phase_steps"] = round(steps * default.decision_phase_steps / default.steps)
    if finish_from is not None and (vision_steps is not None or steps is not None or learning_rate is not None):
        raise RepicError("--finish-from keeps the model's tower and curriculum: drop --vision-steps, --steps and "
                         "--lr (each final stage has its own; --vision-from swaps in another tower, --stages "
                         "chooses the final stages)")
    if vision_steps is not None and vision_steps < 0:
        raise RepicError("--vision-steps cannot be negative; 0 skips the tower's own pretraining")
    settings = {name: value for name, value in given.items() if value is not None}
    # The tower's stage follows --seed like every other draw; --vision-steps 0 means no stage (None).
    steps_given = {"steps": vision_steps} if vision_steps else {}
    settings["vision"] = None if vision_steps == 0 else VisionPretrainConfig(seed=seed, **steps_given)
    if vision_from is not None:
        settings["vision_tower_from"] = str(vision_from)
    if stages is not None:
        settings["final_stages"] = _chosen_stages(stages, FINAL_STAGES)
    config = PretrainConfig(seed=seed, skill_checks=skill_checks, world=WorldConfig(seed=world_seed), **settings)
    # The command as run, every setting spelled out, so the record reproduces the run.
    options = [
        "--out", str(out), *(["--world", str(world)] if world else ["--world-seed", str(world_seed)]),
        "--steps", str(config.steps), "--batch-size", str(config.batch_size), "--lr", str(config.learning_rate),
        "--seed", str(seed), "--extra-scenes", str(config.extra_scenes), "--threads", str(config.threads),
        "--skill-checks", str(skill_checks),
        *(["--vision-from", str(vision_from)] if vision_from is not None else
          ["--vision-steps", str(config.vision.steps if config.vision is not None else 0)]),
        *(["--finish-from", str(finish_from)] if finish_from is not None else []),
        "--stages", ",".join(stage.name for stage in config.final_stages) or "none",
        "--probe" if probe else "--no-probe", *(["--overwrite"] if overwrite else []),
    ]
    quiet_libraries()
    started = time.perf_counter()
    record = pretrain_tiny(
        out,
        config,
        world_dir=world,
        work_dir=work,
        probe=ProbeConfig(seed=seed) if probe else None,
        overwrite=overwrite,
        command="repic models pretrain-tiny " + " ".join(options),
        progress=lambda message: say(f"[{time.perf_counter() - started:6.1f} s] {message}"),
        finish_from=finish_from,
    )
    if finish_from is not None:
        ran = record["final_stages"][len(record["final_stages"]) - len(config.final_stages):]
        say(f"ran the final stages {', '.join(stage['name'] for stage in ran) or '(none)'} on {finish_from} in "
            f"{sum(stage['train_seconds'] for stage in ran):.0f} s; saved to {out.resolve()}", style="bold")
    else:
        training = record["training"]
        say(
            f"pretrained {record['parameters']:,} parameters in {training['train_seconds']:.0f} s "
            f"({training['seconds_per_step']:.3f} s/step); saved to {out.resolve()}",
            style="bold",
        )
    for measure, value in probe_table(record["probe"]) if "probe" in record else []:
        say(f"  {measure:<40} {value}")
    say(f"the run's record: {out.resolve() / RECORD_FILE}")


def _chosen_stages(names: str, known):
    """The final stages ``--stages`` names, in its order; ``none`` is no stage."""
    if names.strip().lower() == "none":
        return ()
    by_name = {stage.name: stage for stage in known}
    chosen = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in by_name]
    if unknown or not chosen:
        raise RepicError(f"--stages: unknown stage {', '.join(unknown) or '(empty)'}; choose among "
                         f"{', '.join(by_name)} (comma-separated) or 'none'")
    return tuple(by_name[name] for name in chosen)


@commands.command("probe")
def probe_command(
    world: Annotated[
        Path, typer.Option("--world", help="The synthetic world whose held-out concepts to probe on.", show_default=False)
    ],
    model: Annotated[
        Path | None,
        typer.Argument(help="A model folder (save_pretrained output); default: the shipped tiny base.", show_default=False),
    ] = None,
    prompts: Annotated[int, typer.Option("--prompts", help="Prompts per measurement.")] = 48,
    caption_tokens: Annotated[int, typer.Option("--caption-tokens", help="Longest caption, in tokens.")] = 96,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the prompts drawn.")] = 0,
    json_out: Annotated[Path | None, typer.Option("--json-out", help="Also write the numbers to this JSON file.")] = None,
) -> None:
    """Measure a model on a world's held-out concepts: captions, copying, matching, boxes, speed."""
    import time

    from ...atomic import atomic_write_json
    from ..probe import ProbeConfig, probe_model, probe_table

    if prompts < 1 or caption_tokens < 1:
        raise RepicError("--prompts and --caption-tokens must be at least 1")
    if model is None:
        from ...shipped import shipped_base_path

        model = shipped_base_path()
    config = ProbeConfig(
        captions=prompts,
        copies=prompts,
        matching=prompts,
        category_questions=prompts,
        boxes=prompts,
        caption_tokens=caption_tokens,
        seed=seed,
    )
    quiet_libraries()
    started = time.perf_counter()
    result = probe_model(model, world, config,
                         progress=lambda message: say(f"[{time.perf_counter() - started:6.1f} s] {message}"))
    say(f"{result['model']} on the held-out concepts of {result['world']}", style="bold")
    known = result["heldout_known_from_pretraining"]
    if known:
        say(f"warning: {known} of the world's held-out concepts look like concepts the model was pretrained "
            "on; its held-out measures overstate what it does on unseen concepts", style="yellow")
    for measure, value in probe_table(result):
        say(f"  {measure:<40} {value}")
    if json_out is not None:
        atomic_write_json(json_out, result)
        say(f"wrote {json_out}")
