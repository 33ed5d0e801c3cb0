"""GPU check of captioning speed: the official one-at-a-time loop against repic's batched path, 7B scale.

Builds a Qwen2.5-VL-7B-Instruct-shaped model (the real configuration, written out below) with random bf16
weights directly on the GPU, so nothing is downloaded, and 64 RAP-style prompts from ``repic.prompts``
(2 reference images + the query, each 448 x 448, i.e. 256 visual tokens per image; 959 prompt tokens
in all). Every answer is forced to exactly 128 new tokens (``min_new_tokens``), greedy, so both paths do
the same work. Then, in one run:

1. the official loop (RePIC's ``caption_eval_*.py``): per prompt, the processor on that one prompt and
   ``model.generate`` with the default dynamic cache (``--loop-prompts`` of them, all 64 by default);
2. ``repic.inference.generate_batched`` on all 64 prompts, as ``repic caption`` runs them on CUDA: sorted
   by length, left-padded, ``--batch-size`` at a time, a static cache with compiled decoding. It runs
   twice: the first call includes the one-time compilation, the second is warm (same shapes).
3. with ``--dynamic``, the batched path once more with the dynamic cache, for reference.

Prints one JSON line per phase and a summary with captions/s, tokens/s and the ratios to the loop; the
target is a warm ratio of at least 20. The summary is also written to ``$OUT/gpu_caption_check.json`` when
``OUT`` is set. The processor is repic's Qwen2.5-VL processor around the tiny tokenizer (the real one
cannot be downloaded); the model keeps Qwen's 152,064-token vocabulary.

Measured on one H200 (torch 2.11, transformers 5.17, sdpa, 959-token prompts, 16 loop prompts): loop
47.1 tokens/s (2.29 s per caption); batched at 32, static cache, warm 780.6 tokens/s (16.6x), first call
201.9 (4.3x: 30 s of compilation); dynamic cache 383.6 (8.1x); batch 64 static warm 785. What bounds the
batched path is the prefill, not decoding: the 64 prompts' prefill alone takes 6.6 s of the 10.4, and 2.4 s
of each batch of 32 is the vision tower, because transformers runs Qwen2.5-VL's windowed vision attention
one window at a time unless flash attention is used (``--attn flash_attention_2`` with flash-attn
installed runs all windows in one varlen call).

Usage: python benchmarks/gpu_caption_check.py [--shrink] [--loop-prompts 64] [--batch-size 32] [--dynamic]
    [--attn sdpa|eager|flash_attention_2]
    --shrink: a tiny model and 112-pixel images on the CPU, to check the script anywhere in seconds.
Expected time on one H200: a few seconds to build, 150 s for the 64 loop captions, about 55 s for the two
batched calls (25 s more with --dynamic); --loop-prompts 32 saves 75 s and measures the same rate.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
import transformers
from PIL import Image
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from repic.inference.generate import GenerationSettings, PromptInput, generate_batched
from repic.prompts import eval_question, inference_messages
from repic.world.tiny import TinyModelConfig, tiny_processor
from repic.world.tokenizer import builtin_corpus, train_tiny_tokenizer

# Qwen2.5-VL-7B-Instruct (config.json of the hub checkpoint), and a tiny stand-in for --shrink.
QWEN25_VL_7B_TEXT = {
    "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
    "num_key_value_heads": 4, "vocab_size": 152064, "max_position_embeddings": 128000, "rms_norm_eps": 1e-6,
    "hidden_act": "silu", "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
}
QWEN25_VL_7B_VISION = {
    "depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": 3584,
    "fullatt_block_indexes": [7, 15, 23, 31], "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
    "window_size": 112, "in_channels": 3, "hidden_act": "silu", "tokens_per_second": 2,
}
SHRUNK_TEXT = {**QWEN25_VL_7B_TEXT, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
               "num_attention_heads": 4, "num_key_value_heads": 2,
               "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]}}
SHRUNK_VISION = {**QWEN25_VL_7B_VISION, "depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
                 "out_hidden_size": 64, "fullatt_block_indexes": [1]}
TARGET_RATIO = 20.0
NAMES = ("<bako>", "<tumi>", "<lefa>", "<sodi>", "<rupa>", "<meko>", "<zalo>", "<fida>")
INFOS = ("a red bear with blue stripes", "a green cup with white dots and a yellow handle", "a small grey cat",
         "a tall purple robot with a red bow", "a round orange house", "a striped blue and white car")


def log(**fields) -> None:
    if torch.cuda.is_available():
        fields["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(fields), flush=True)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def build_model(shrink: bool, tokenizer, device: str, attn: str = "sdpa"):
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in (
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"))}
    text = dict(SHRUNK_TEXT if shrink else QWEN25_VL_7B_TEXT)
    text.update(bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"), eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    config = Qwen2_5_VLConfig(text_config=text, vision_config=SHRUNK_VISION if shrink else QWEN25_VL_7B_VISION,
                              tie_word_embeddings=False, **ids)
    dtype = torch.float32 if shrink else torch.bfloat16
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype, attn_implementation=attn)
    return model.eval()


def make_prompts(count: int, side: int) -> list[PromptInput]:
    rng = np.random.default_rng(0)
    prompts = []
    for number in range(count):
        references = [(NAMES[(number + i) % len(NAMES)], INFOS[(number * 2 + i) % len(INFOS)]) for i in range(2)]
        images = [Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)) for _ in range(3)]
        prompts.append(PromptInput(inference_messages(references, eval_question(number)), images))
    return prompts


def official_loop(model, processor, prompts, new_tokens: int, device: str) -> tuple[list[list[int]], list[float]]:
    """One prompt at a time, dynamic cache, greedy, exactly ``new_tokens``: (token ids, seconds per caption)."""
    outputs, seconds = [], []
    for prompt in prompts:
        sync()
        started = time.perf_counter()
        text = processor.apply_chat_template(prompt.messages, add_generation_prompt=True, tokenize=False)
        inputs = processor(text=[text], images=prompt.images, return_tensors="pt").to(device)
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        with torch.inference_mode():
            output = model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                    pad_token_id=processor.tokenizer.pad_token_id)
        sync()
        seconds.append(time.perf_counter() - started)
        outputs.append(output[0, inputs["input_ids"].shape[1]:].tolist())
    return outputs, seconds


def batched(model, processor, prompts, settings: GenerationSettings, label: str) -> dict:
    batches: list[float] = []
    sync()
    started = time.perf_counter()
    answers = generate_batched(model, processor, prompts, settings, on_batch=lambda done: batches.append(done.batch_seconds))
    sync()
    seconds = time.perf_counter() - started
    tokens = sum(answer.new_tokens for answer in answers)
    result = {"phase": label, "cache": settings.cache, "batch_size": settings.batch_size, "captions": len(answers),
              "new_tokens": tokens, "seconds": round(seconds, 2), "batch_seconds": [round(s, 2) for s in batches],
              "captions_per_s": round(len(answers) / seconds, 3), "tokens_per_s": round(tokens / seconds, 1)}
    log(**result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shrink", action="store_true", help="tiny model, small images, CPU: a dry run")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--loop-prompts", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--dynamic", action="store_true", help="also time the batched path with a dynamic cache")
    parser.add_argument("--attn", default="sdpa", choices=["sdpa", "eager", "flash_attention_2"],
                        help="attention implementation of the model (flash_attention_2 needs flash-attn)")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() and not args.shrink else "cpu"
    side = 112 if args.shrink else 448

    started = time.perf_counter()
    tokenizer = train_tiny_tokenizer(builtin_corpus())
    processor = tiny_processor(TinyModelConfig(min_pixels=side * side, max_pixels=side * side), tokenizer)
    processor.tokenizer.padding_side = "left"
    model = build_model(args.shrink, tokenizer, device, args.attn)
    prompts = make_prompts(args.prompts, side)
    sync()
    log(phase="init", attn=args.attn, device=torch.cuda.get_device_name() if device == "cuda" else "cpu", torch=torch.__version__,
        transformers=transformers.__version__, seconds=round(time.perf_counter() - started, 1),
        params_b=round(sum(p.numel() for p in model.parameters()) / 1e9, 3))

    official_loop(model, processor, prompts[:1], 2, device)  # warm-up: CUDA context, kernels, allocator
    loop_ids, loop_seconds = official_loop(model, processor, prompts[: args.loop_prompts], args.new_tokens, device)
    loop_tokens = sum(len(ids) for ids in loop_ids)
    loop = {"phase": "official_loop", "captions": len(loop_ids), "new_tokens": loop_tokens,
            "seconds": round(sum(loop_seconds), 2), "median_s_per_caption": round(float(np.median(loop_seconds)), 3),
            "captions_per_s": round(len(loop_ids) / sum(loop_seconds), 3),
            "tokens_per_s": round(loop_tokens / sum(loop_seconds), 1)}
    log(**loop)

    settings = GenerationSettings(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                                  batch_size=args.batch_size, cache="auto")
    cold = batched(model, processor, prompts, settings, "repic_batched_first_call")
    warm = batched(model, processor, prompts, settings, "repic_batched_warm")
    runs = {"cold": cold, "warm": warm}
    if args.dynamic:
        runs["dynamic"] = batched(model, processor, prompts, GenerationSettings(
            max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, batch_size=args.batch_size,
            cache="dynamic"), "repic_batched_dynamic")
    summary = {
        "phase": "summary",
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "prompt_tokens": int(processor(text=[processor.apply_chat_template(prompts[0].messages, add_generation_prompt=True,
                                      tokenize=False)], images=prompts[0].images, return_tensors="pt")["input_ids"].shape[1]),
        "loop": loop,
        **{name: run for name, run in runs.items()},
        "ratio_tokens_per_s": {name: round(run["tokens_per_s"] / loop["tokens_per_s"], 2) for name, run in runs.items()},
        "target_ratio": TARGET_RATIO,
    }
    summary["meets_target_warm"] = summary["ratio_tokens_per_s"]["warm"] >= TARGET_RATIO
    log(**summary)
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], "gpu_caption_check.json"), "w") as handle:
            json.dump(summary, handle, indent=1)


if __name__ == "__main__":
    main()
