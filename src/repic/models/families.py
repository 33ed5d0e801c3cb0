"""What differs between image-text-to-text families, in one table: where the vision side lives, how images
become tokens.

Everything else about a family (its processor class, chat template and image-token expansion) comes from its
own Hugging Face folder through the Auto classes, so the loading, prompting, training and merging code has no
per-family branches; it asks ``family_of(model)`` for the few names that differ. A model type not in the
table gets ``GENERIC``, which knows every name of the table, so a new family usually works unlisted; add a
row when it does not (and a tiny model of it to ``tests/tiny_families.py``).

The ``vision`` names are attributes holding a vision tower, ``projector`` names the module that maps its
features into the language model (Qwen keeps its ``merger`` inside ``visual``). Both make up the "vision
side" that stays frozen and gets no LoRA (``repic.models.load``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    """One row of the table: a family of image-text-to-text models sharing a layout."""

    name: str
    model_types: tuple[str, ...]  # the ``config.model_type`` values of the family
    vision: tuple[str, ...]  # attribute names of the vision tower
    projector: tuple[str, ...]  # attribute names of the projector into the language model
    image_tokens: str  # how the processor turns one image into tokens (shown by `repic models inspect`)


FAMILIES: tuple[Family, ...] = (
    Family("qwen2_5_vl", ("qwen2_5_vl", "qwen2_vl"), ("visual",), (),
           "<|vision_start|> + one <|image_pad|> per 28x28 patch group (count varies with size) + <|vision_end|>"),
    Family("qwen3_vl", ("qwen3_vl", "qwen3_vl_moe"), ("visual",), (),
           "<|vision_start|> + one <|image_pad|> per 32x32 patch group (count varies with size) + <|vision_end|>"),
    Family("llava", ("llava", "llava_next", "llava_onevision"), ("vision_tower",), ("multi_modal_projector",),
           "<image> expanded to a fixed count of patch tokens (CLIP / SigLIP tower)"),
    Family("idefics3", ("idefics3", "smolvlm"), ("vision_model",), ("connector",),
           "<fake_token_around_image><global-img> + <image> x image_seq_len (pixel shuffle) + <fake_token_around_image>"),
    Family("gemma3", ("gemma3", "paligemma"), ("vision_tower",), ("multi_modal_projector",),
           "<start_of_image> + a fixed count of <image_soft_token> + <end_of_image>"),
)  # fmt: skip

GENERIC = Family(
    "generic",
    (),
    tuple(dict.fromkeys(name for family in FAMILIES for name in family.vision)),
    tuple(dict.fromkeys([*(name for family in FAMILIES for name in family.projector), "mm_projector"])),
    "as the model's processor defines",
)

_BY_TYPE = {model_type: family for family in FAMILIES for model_type in family.model_types}


def family_of(model_or_config: object) -> Family:
    """The table row of a model (or its config) by ``model_type``; ``GENERIC`` for a type not listed."""
    config = getattr(model_or_config, "config", model_or_config)
    return _BY_TYPE.get(getattr(config, "model_type", None), GENERIC)
