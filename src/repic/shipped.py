"""What ships inside the package as data (under ``repic/assets/``): two tiny model folders.

- ``tiny-base``: the pretrained tiny base, the demo's "zero-shot MLLM" (``repic models pretrain-tiny``).
- ``tiny-repic``: that base after the demo's RePIC post-training (the default demo run's ``repic-s0``): what
  ``repic app`` and ``repic serve`` open when no demo run is found, so captions name concepts out of the
  box. Its ``shipped_record.json`` says which run, recipe and seed made it, what it measured and the one
  command that rebuilds it.

The library reads these as plain files (Hugging Face folders), so it needs none of the code that made
them; the embedded world (``repic.world``) rebuilds both from scratch.
"""

from __future__ import annotations

from pathlib import Path

from .errors import RepicError

SHIPPED_BASE_NAME = "tiny-base"  # the model name that means the tiny base shipped with repic
SHIPPED_REPIC_NAME = "tiny-repic"  # ... and the tiny RePIC model shipped with it
SHIPPED_BASE = Path(__file__).resolve().parent / "assets" / SHIPPED_BASE_NAME
SHIPPED_REPIC = Path(__file__).resolve().parent / "assets" / SHIPPED_REPIC_NAME
SHIPPED_RECORD = "shipped_record.json"


def shipped_base_path() -> Path:
    """The pretrained tiny base shipped inside the package (``repic/assets/tiny-base``).

    It is the demo's "zero-shot MLLM": pretrained by ``repic models pretrain-tiny`` on generic tasks of the
    default world's training split; its ``pretrain_record.json`` says how and what it measured.
    """
    if not (SHIPPED_BASE / "config.json").is_file() or not any(SHIPPED_BASE.glob("*.safetensors")):
        raise RepicError(
            f"the shipped tiny base is missing or incomplete at {SHIPPED_BASE}: reinstall repic, or rebuild it "
            f"with `repic models pretrain-tiny --out {SHIPPED_BASE} --overwrite`"
        )
    return SHIPPED_BASE


def shipped_repic_path() -> Path:
    """The tiny RePIC model shipped inside the package (``repic/assets/tiny-repic``; see the module)."""
    if not (SHIPPED_REPIC / "config.json").is_file() or not any(SHIPPED_REPIC.glob("*.safetensors")):
        raise RepicError(
            f"the shipped tiny RePIC model is missing or incomplete at {SHIPPED_REPIC}: reinstall repic, or rebuild "
            f"it as its record says (`python -m repic.world.ship DEMO_RUN`)"
        )
    return SHIPPED_REPIC


def resolve_model_name(name_or_path: str) -> str:
    """The folder or hub id to load: ``tiny-base`` and ``tiny-repic`` are the models shipped with repic,
    anything else is as given."""
    if name_or_path == SHIPPED_BASE_NAME:
        return str(shipped_base_path())
    if name_or_path == SHIPPED_REPIC_NAME:
        return str(shipped_repic_path())
    return name_or_path
