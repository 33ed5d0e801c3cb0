"""Real-scale check of repic's model path: a Qwen2.5-VL-7B-shaped policy with the paper's LoRA.

Builds the real Qwen2.5-VL-7B-Instruct configuration with random weights directly on the GPU in bf16
(no download), sets it up with ``repic.models.prepare_policy`` exactly as ``load_policy`` does after
loading (LoRA r64 / alpha 128 / dropout 0.05 on every linear layer of the language model, vision tower
frozen, gradient checkpointing), then runs one multi-image prompt (2 references + query at 448x448, the
RAP-style inference layout from ``repic.prompts``) through ``generate`` and one forward+backward pass on
a prompt+completion. Prints one JSON line per phase with times and peak memory.

The processor is repic's Qwen2.5-VL processor around the tiny tokenizer (the real tokenizer cannot be
downloaded here); the model keeps Qwen's 152,064-row vocabulary so embedding and lm_head sizes are real.

Usage: python benchmarks/gpu_model_check.py [--tiny]   (--tiny: a small model on the CPU, as a dry run)
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from PIL import Image
from transformers import Qwen2_5_VLForConditionalGeneration

from repic.models import LoraSettings, describe_trainable, prepare_policy
from repic.prompts import inference_messages
from repic.world.tiny import TinyModelConfig, qwen2_5_vl_config, tiny_processor
from repic.world.tokenizer import builtin_corpus, train_tiny_tokenizer

QWEN25_VL_7B = TinyModelConfig(
    text_hidden_size=3584,
    text_layers=28,
    text_intermediate_size=18944,
    text_heads=28,
    text_kv_heads=4,
    vision_hidden_size=1280,
    vision_depth=32,
    vision_intermediate_size=3420,
    vision_heads=16,
    min_pixels=448 * 448,
    max_pixels=448 * 448,
    max_position_embeddings=128000,
)
QWEN_VOCAB = 152064
QWEN_FULL_ATTENTION_BLOCKS = [7, 15, 23, 31]


def report(**fields) -> None:
    if torch.cuda.is_available():
        fields["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(fields), flush=True)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiny", action="store_true", help="dry run on the CPU with the tiny sizes")
    parser.add_argument("--new-tokens", type=int, default=128)
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    sizes = TinyModelConfig() if args.tiny else QWEN25_VL_7B
    side = 112 if args.tiny else 448

    tokenizer = train_tiny_tokenizer(builtin_corpus())
    processor = tiny_processor(sizes, tokenizer)
    config = qwen2_5_vl_config(sizes, tokenizer)
    if not args.tiny:  # the real model's vocabulary and full-attention layout
        config.text_config.vocab_size = QWEN_VOCAB
        config.vision_config.fullatt_block_indexes = QWEN_FULL_ATTENTION_BLOCKS

    start = time.perf_counter()
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype, attn_implementation="sdpa")
    sync()
    report(phase="init", device=torch.cuda.get_device_name() if device == "cuda" else "cpu",
           torch=torch.__version__, seconds=round(time.perf_counter() - start, 2),
           params_b=round(sum(p.numel() for p in model.parameters()) / 1e9, 3))

    model, mode, targets = prepare_policy(model, lora=LoraSettings(), gradient_checkpointing=True)
    parts = describe_trainable(model)
    vision_trainable = parts["parts"]["vision"]["trainable"]
    report(phase="lora", mode=mode, targets=targets, trainable=parts["trainable"], total=parts["total"],
           vision_trainable=vision_trainable)
    assert vision_trainable == 0, "the vision tower must be frozen"

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)) for _ in range(3)]
    messages = inference_messages(
        [("<bako>", "a red bear with blue stripes"), ("<tumi>", "a green cup with dots")],
        "Give a caption of the image.",
    )
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=images, return_tensors="pt").to(device)
    inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
    prompt_len = inputs["input_ids"].shape[1]

    model.eval()
    sync()
    start = time.perf_counter()
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                             do_sample=False)
    sync()
    seconds = time.perf_counter() - start
    new = out.shape[1] - prompt_len
    report(phase="generate", prompt_tokens=prompt_len, new_tokens=new, seconds=round(seconds, 2),
           tokens_per_s=round(new / seconds, 1))

    model.train()
    labels = out.clone()
    labels[:, :prompt_len] = -100  # loss on the completion only, as in training
    # Only what the forward pass needs; per-token fields of the prompt (token types) would not match.
    full = {"input_ids": out, "attention_mask": torch.ones_like(out),
            "pixel_values": inputs["pixel_values"], "image_grid_thw": inputs["image_grid_thw"]}
    sync()
    start = time.perf_counter()
    loss = model(**full, labels=labels).loss
    loss.backward()
    sync()
    grads = sum(1 for p in model.parameters() if p.requires_grad and p.grad is not None)
    report(phase="forward_backward", tokens=int(out.shape[1]), loss=round(float(loss), 3),
           seconds=round(time.perf_counter() - start, 2), params_with_grad=grads)


if __name__ == "__main__":
    main()
