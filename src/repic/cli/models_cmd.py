"""``repic models info``: describe any model folder or hub id.

``info`` calls ``repic.models.inspect_model``, which reads the config and builds the model on the ``meta``
device, so a 7B model is described without loading its weights. The embedded world adds its own ``models``
commands (``build-tiny``, ``pretrain-tiny``, ``probe``: ``repic.world.cli``). ``repic.models`` pulls in torch
and transformers, so it is imported inside the command: other ``repic`` commands start without paying for it.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from .console import console, say

app = typer.Typer(
    help="Inspect models; build, pretrain and probe the built-in tiny model.",
    no_args_is_help=True,
)


@app.command("info")
def info(
    model: Annotated[str, typer.Argument(help="A model folder or a hub id.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the description as JSON.")] = False,
) -> None:
    """Describe a model: architecture, vision/language/lm_head parameters, LoRA targets, processor."""
    from ..models.load import inspect_model

    description = inspect_model(model)
    if as_json:
        console.print_json(json.dumps(description))
        return
    params = description["parameters"]
    say(
        f"{description['source']}: {description['architecture']} ({description['model_type']})", style="bold"
    )
    say(f"  location        {description['location']}")
    say(f"  parameters      {params['total']:,}")
    for part, total in params["parts"].items():
        say(f"    {part:<13} {total:,}")
    say(f"  vision modules  {', '.join(description['vision_modules']) or '(none found)'}")
    say(f"  lm_head         {description['lm_head'] or '(none)'}")
    say(f"  LoRA targets    {', '.join(description['lora_targets'])}")
    say(f"  vocabulary      {description['vocab_size']}")
    pixels = f"{description['min_pixels']}..{description['max_pixels']} pixels per image"
    say(f"  images          {description['image_processor']}, {pixels}")
    multi = {True: "yes", False: "NO", None: "unknown"}[description["images_per_turn_ok"]]
    say(f"  multi-image chat template  {multi}")
    if description["checkpoint_bytes"] is not None:
        say(f"  checkpoint      {description['checkpoint_bytes'] / 1e6:.1f} MB")
