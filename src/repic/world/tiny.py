"""The built-in tiny model: Qwen2.5-VL's architecture at under a million parameters, built from scratch.

No model can be downloaded on the machines this project is developed on, so the project builds its own
policy and exercises the very code path that Qwen2.5-VL-7B takes: ``build_tiny_model`` writes an ordinary
Hugging Face folder (``config.json`` of type ``qwen2_5_vl``, ``model.safetensors``, tokenizer, processor,
chat template, generation config) that ``AutoModelForImageTextToText`` / ``AutoProcessor`` load like any
hub checkpoint. Nothing downstream knows it is tiny.

What it chose and why:

- Sizes (``TinyModelConfig``): text hidden 128, 2 layers, MLP 256, 4 heads / 2 KV heads; vision hidden 64,
  2 blocks, patch 14, merge 2. A feasibility study on a 2-core CPU found this size learns in-context name
  copying within minutes while a 4-layer / 256-wide model did not within CPU budgets.
- Multimodal RoPE sections are Qwen's 16/24/24 split of the rotary half-dimension, scaled to the small
  head dimension (head dim 32 -> 4/6/6), keeping Qwen's temporal/height/width proportions.
- Untied input and output embeddings, as in Qwen2.5-VL-7B, so the ``lm_head`` is a part of its own.
- Images: the Qwen image processor with pixel budgets 56x56..112x112, so a 56x56 reference image becomes
  4 visual tokens and a 112x112 query 16 (each token covers a 28x28 patch after merging).
- Weights are randomly initialised with a fixed seed; pretraining is a later, separate stage.
- The folder is written to a temporary sibling and renamed into place, so an interrupted build never
  leaves a half-written model behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import (
    GenerationConfig,
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
)

from ..atomic import atomic_folder, atomic_write_json
from ..errors import RepicError
from .tokenizer import CHAT_TEMPLATE, train_tiny_tokenizer


@dataclass(frozen=True)
class TinyModelConfig:
    """Every size of the tiny model; the defaults are the size that learned name copying on a CPU."""

    vocab_size: int = 768  # BPE target; name syllables and Qwen's special tokens come on top
    text_hidden_size: int = 128
    text_layers: int = 2
    text_intermediate_size: int = 256
    text_heads: int = 4
    text_kv_heads: int = 2
    vision_hidden_size: int = 64
    vision_depth: int = 2
    vision_intermediate_size: int = 128
    vision_heads: int = 2
    patch_size: int = 14
    merge_size: int = 2
    temporal_patch_size: int = 2
    window_size: int = 112  # Qwen2.5-VL's window attention span in pixels (4x4 merged tokens)
    min_pixels: int = 56 * 56
    max_pixels: int = 112 * 112
    max_position_embeddings: int = 8192
    rope_theta: float = 1_000_000.0
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.text_hidden_size % self.text_heads:
            problems.append(
                f"text_hidden_size {self.text_hidden_size} is not divisible by text_heads {self.text_heads}"
            )
        elif (self.text_hidden_size // self.text_heads) % 2 or self.text_hidden_size // self.text_heads < 8:
            problems.append(
                "the text head dimension (text_hidden_size / text_heads) must be even and at least 8"
            )
        if self.text_heads % self.text_kv_heads:
            problems.append(
                f"text_heads {self.text_heads} is not divisible by text_kv_heads {self.text_kv_heads}"
            )
        if self.vision_hidden_size % self.vision_heads:
            problems.append(
                f"vision_hidden_size {self.vision_hidden_size} is not divisible by vision_heads {self.vision_heads}"
            )
        token_side = self.patch_size * self.merge_size
        if self.min_pixels < token_side**2 or self.min_pixels > self.max_pixels:
            problems.append(
                f"pixel budgets must satisfy {token_side}^2 <= min_pixels <= max_pixels "
                f"(got {self.min_pixels}, {self.max_pixels})"
            )
        if self.window_size < token_side:
            problems.append(
                f"window_size {self.window_size} must be at least patch_size * merge_size = {token_side}"
            )
        if problems:
            raise RepicError("invalid TinyModelConfig: " + "; ".join(problems) + ". Adjust these fields.")

    @property
    def mrope_section(self) -> list[int]:
        """Qwen's temporal/height/width split of the rotary half-dimension, scaled to this head size."""
        half = self.text_hidden_size // self.text_heads // 2
        temporal = half // 4
        height = (half - temporal) // 2
        return [temporal, height, half - temporal - height]  # head dim 128 -> [16, 24, 24], as in Qwen2.5-VL


# Pixels per side of one visual token after the merge (14 px patches, 2 x 2 merged): the cells that the
# grounding and the tower's dense targets are given for.
TOKEN_CELL = TinyModelConfig().patch_size * TinyModelConfig().merge_size


def qwen2_5_vl_config(config: TinyModelConfig, tokenizer: PreTrainedTokenizerFast) -> Qwen2_5_VLConfig:
    """The Qwen2.5-VL model config for ``config``, with the tokenizer's special-token ids wired in."""

    def token_id(token: str) -> int:
        return tokenizer.convert_tokens_to_ids(token)

    rope = {"rope_type": "default", "rope_theta": config.rope_theta, "mrope_section": config.mrope_section}
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": config.text_hidden_size,
        "intermediate_size": config.text_intermediate_size,
        "num_hidden_layers": config.text_layers,
        "num_attention_heads": config.text_heads,
        "num_key_value_heads": config.text_kv_heads,
        "max_position_embeddings": config.max_position_embeddings,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-6,
        "rope_parameters": rope,
        "bos_token_id": token_id("<|endoftext|>"),
        "eos_token_id": token_id("<|im_end|>"),
        "pad_token_id": token_id("<|endoftext|>"),
    }
    vision = {
        "depth": config.vision_depth,
        "hidden_size": config.vision_hidden_size,
        "intermediate_size": config.vision_intermediate_size,
        "num_heads": config.vision_heads,
        "out_hidden_size": config.text_hidden_size,
        "patch_size": config.patch_size,
        "spatial_merge_size": config.merge_size,
        "temporal_patch_size": config.temporal_patch_size,
        "window_size": config.window_size,
        "fullatt_block_indexes": [config.vision_depth - 1],  # window attention below, full attention last
        "hidden_act": "silu",
        "in_channels": 3,
        "tokens_per_second": 2,
    }
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=token_id("<|image_pad|>"),
        video_token_id=token_id("<|video_pad|>"),
        vision_start_token_id=token_id("<|vision_start|>"),
        vision_end_token_id=token_id("<|vision_end|>"),
        tie_word_embeddings=False,
    )


def tiny_processor(config: TinyModelConfig, tokenizer: PreTrainedTokenizerFast) -> Qwen2_5_VLProcessor:
    """Qwen2.5-VL's processor around ``tokenizer``, with image pixel budgets sized for small images."""
    sizes = {
        "min_pixels": config.min_pixels,
        "max_pixels": config.max_pixels,
        "patch_size": config.patch_size,
        "merge_size": config.merge_size,
        "temporal_patch_size": config.temporal_patch_size,
    }
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**sizes),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**sizes),  # the processor requires one; the same budgets apply
        chat_template=CHAT_TEMPLATE,
    )


def build_tiny_model(
    out_dir: str | os.PathLike,
    *,
    texts: Iterable[str],
    config: TinyModelConfig = TinyModelConfig(),
    overwrite: bool = False,
) -> Path:
    """Train the tokenizer on ``texts``, build the randomly initialised model and save both to ``out_dir``.

    Returns the folder, which loads with ``AutoModelForImageTextToText.from_pretrained`` and
    ``AutoProcessor.from_pretrained``. An existing non-empty ``out_dir`` is replaced only with
    ``overwrite=True``.
    """
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise RepicError(f"{out} exists and is a file: choose a folder path for the tiny model (--out DIR)")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise RepicError(
            f"{out} already exists and is not empty: remove it, choose another --out, or pass --overwrite"
        )

    tokenizer = train_tiny_tokenizer(texts, vocab_size=config.vocab_size)
    processor = tiny_processor(config, tokenizer)
    with torch.random.fork_rng(devices=[]):  # seed the initial weights without touching the caller's RNG
        torch.manual_seed(config.seed)
        model = Qwen2_5_VLForConditionalGeneration(qwen2_5_vl_config(config, tokenizer))
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )

    with atomic_folder(out) as staging:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        _write_build_record(staging, config)
    return out


def _write_build_record(folder: Path, config: TinyModelConfig) -> None:
    """Record the sizes the model was built from, so a folder says how to rebuild it."""
    atomic_write_json(folder / "repic_tiny_config.json", asdict(config))
