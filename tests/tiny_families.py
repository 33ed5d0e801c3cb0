"""Tiny random models of real image-text-to-text families, built locally (nothing is downloaded).

Each family has its own config, processor class, image-token scheme and chat template, like its published
checkpoints, at a few hundred thousand parameters: Qwen3-VL (Qwen's image pads between vision start/end,
a variable token count per image), LLaVA (a CLIP tower and a Llama: one ``<image>`` expanded to a fixed
count), Idefics3 (SmolVLM's architecture: a SigLIP-like tower, pixel shuffle and ``<fake_token_around_image>``
wrapped image tokens). The tokenizer is the shipped tiny base's byte-level BPE with each family's special
tokens added; weights are random, so the tests check that the code paths run, not what the models say.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoTokenizer,
    CLIPImageProcessor,
    CLIPVisionConfig,
    GenerationConfig,
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessor,
    Idefics3Processor,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    Qwen2VLImageProcessor,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    Qwen3VLProcessor,
)

from repic.shipped import shipped_base_path

FAMILIES = ("qwen3_vl", "llava", "idefics3")
_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "head_dim": 8, "max_position_embeddings": 2048}  # fmt: skip

# One role line per message; images where the content puts them; the end-of-turn token closes every
# message, so SFT learns to stop. Only the image markup differs between the families.
_TEMPLATE = (
    "{%- for message in messages -%}{{- ROLE_OPEN -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}{%- else -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' or 'image' in part -%}{{- IMAGE -}}"
    "{%- elif 'text' in part -%}{{- part['text'] -}}{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{- END -}}{%- endfor -%}{%- if add_generation_prompt -%}{{- GENERATION -}}{%- endif -%}"
)


def _template(role_open: str, image: str, end: str, generation: str) -> str:
    return (_TEMPLATE.replace("ROLE_OPEN", role_open).replace("IMAGE", repr(image))
            .replace("END", repr(end)).replace("GENERATION", repr(generation)))  # fmt: skip


def _tokenizer(*special: str):
    tokenizer = AutoTokenizer.from_pretrained(shipped_base_path())
    if special:
        tokenizer.add_special_tokens({"additional_special_tokens": list(special)})
    tokenizer.padding_side = "left"
    return tokenizer


def _save(model, processor, tokenizer, out: Path) -> Path:
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=False
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def _qwen3_vl(out: Path) -> Path:
    tokenizer = _tokenizer()
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen3VLConfig(
        text_config={**_TEXT, "vocab_size": len(tokenizer), "rope_scaling": {"rope_type": "default",
                     "mrope_section": [1, 1, 2], "mrope_interleaved": True}},
        vision_config={"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "patch_size": 16,
                       "spatial_merge_size": 2, "out_hidden_size": 32, "deepstack_visual_indexes": [1],
                       "num_position_embeddings": 64},
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=True,
    )  # fmt: skip
    model = Qwen3VLForConditionalGeneration(config)
    image_processor = Qwen2VLImageProcessor(
        patch_size=16, merge_size=2, temporal_patch_size=2, min_pixels=32 * 32, max_pixels=64 * 64
    )
    template = _template("'<|im_start|>' + message['role'] + '\\n'", "<|vision_start|><|image_pad|><|vision_end|>",
                         "<|im_end|>\n", "<|im_start|>assistant\n")  # fmt: skip
    from transformers import Qwen3VLVideoProcessor

    processor = Qwen3VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                 video_processor=Qwen3VLVideoProcessor(), chat_template=template)  # fmt: skip
    return _save(model, processor, tokenizer, out)


def _llava(out: Path) -> Path:
    tokenizer = _tokenizer("<image>")
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=2, image_size=32, patch_size=8, projection_dim=32),
        text_config=LlamaConfig(**_TEXT, vocab_size=len(tokenizer)),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default", vision_feature_layer=-1,
    )  # fmt: skip
    model = LlavaForConditionalGeneration(config)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    template = _template("(message['role'] | upper) + ': '", "<image>\n", "<|im_end|>\n", "ASSISTANT: ")
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=8,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=template)  # fmt: skip
    return _save(model, processor, tokenizer, out)


def _idefics3(out: Path) -> Path:
    tokenizer = _tokenizer("<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>")
    config = Idefics3Config(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        text_config={**_TEXT, "vocab_size": len(tokenizer), "model_type": "llama"},
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), scale_factor=2,
        tie_word_embeddings=True,
    )  # fmt: skip
    model = Idefics3ForConditionalGeneration(config)
    image_processor = Idefics3ImageProcessor(
        do_image_splitting=False, size={"longest_edge": 32}, max_image_size={"longest_edge": 32}
    )
    template = _template("(message['role'] | capitalize) + ':'", "<image>", "<end_of_utterance>\n", "Assistant:")
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=4,
                                  chat_template=template)  # fmt: skip
    return _save(model, processor, tokenizer, out)


def build_family(family: str, out: str | Path, seed: int = 0) -> Path:
    """Build the tiny random model of ``family`` (one of ``FAMILIES``) in ``out`` and return the folder."""
    builders = {"qwen3_vl": _qwen3_vl, "llava": _llava, "idefics3": _idefics3}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return builders[family](Path(out))
