"""What ships inside the package as data (under ``repic/assets/``): the pretrained tiny base model folder.

The library reads these as plain files (a Hugging Face folder), so it needs none of the code that made them;
``repic models pretrain-tiny`` (the embedded world, ``repic.world``) rebuilds the base from scratch.
"""

from __future__ import annotations

from pathlib import Path

from .errors import RepicError

SHIPPED_BASE_NAME = "tiny-base"  # the model name that means the tiny base shipped with repic
SHIPPED_BASE = Path(__file__).resolve().parent / "assets" / SHIPPED_BASE_NAME


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


def resolve_model_name(name_or_path: str) -> str:
    """The folder or hub id to load: ``tiny-base`` is the tiny base shipped with repic, anything else as given."""
    return str(shipped_base_path()) if name_or_path == SHIPPED_BASE_NAME else name_or_path
