"""``repic models``: build the built-in tiny model and inspect any model folder or hub id.

Both commands are thin: ``build-tiny`` calls ``repic.models.build_tiny_model``, ``info`` calls
``repic.models.inspect_model`` (which reads the config and builds the model on the ``meta`` device, so a 7B
model is described without loading its weights). ``repic.models`` pulls in torch and transformers, so it is
imported inside the commands: other ``repic`` commands start without paying for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from ..errors import RepicError

app = typer.Typer(
    help="Build the built-in tiny model and inspect models.",
    no_args_is_help=True,
)

_out = Console(highlight=False)


def _say(text: str, style: str = "") -> None:
    _out.print(Text(text, style=style), soft_wrap=True)


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


@app.command("build-tiny")
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
    from ..models.tiny import TinyModelConfig, build_tiny_model
    from ..models.tokenizer import builtin_corpus

    texts = _read_corpus(corpus) if corpus is not None else builtin_corpus()
    folder = build_tiny_model(out, texts=texts, config=TinyModelConfig(seed=seed), overwrite=overwrite)
    size = sum(path.stat().st_size for path in folder.iterdir() if path.is_file())
    _say(f"built the tiny model in {folder} ({size / 1e6:.1f} MB on disk)")
    _say(f"inspect it with `repic models info {folder}`")


@app.command("info")
def info(
    model: Annotated[str, typer.Argument(help="A model folder or a hub id.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the description as JSON.")] = False,
) -> None:
    """Describe a model: architecture, vision/language/lm_head parameters, LoRA targets, processor."""
    from ..models.load import inspect_model

    description = inspect_model(model)
    if as_json:
        _out.print_json(json.dumps(description))
        return
    params = description["parameters"]
    _say(
        f"{description['source']}: {description['architecture']} ({description['model_type']})", style="bold"
    )
    _say(f"  location        {description['location']}")
    _say(f"  parameters      {params['total']:,}")
    for part, total in params["parts"].items():
        _say(f"    {part:<13} {total:,}")
    _say(f"  vision modules  {', '.join(description['vision_modules']) or '(none found)'}")
    _say(f"  lm_head         {description['lm_head'] or '(none)'}")
    _say(f"  LoRA targets    {', '.join(description['lora_targets'])}")
    _say(f"  vocabulary      {description['vocab_size']}")
    pixels = f"{description['min_pixels']}..{description['max_pixels']} pixels per image"
    _say(f"  images          {description['image_processor']}, {pixels}")
    multi = {True: "yes", False: "NO", None: "unknown"}[description["images_per_turn_ok"]]
    _say(f"  multi-image chat template  {multi}")
    if description["checkpoint_bytes"] is not None:
        _say(f"  checkpoint      {description['checkpoint_bytes'] / 1e6:.1f} MB")
