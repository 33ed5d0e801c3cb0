"""Does compiled static-cache decoding of a left-padded batch stay finite and match the unpadded rows?

The GPU GRPO check (``gpu_grpo_check.py``) stopped its first compiled, static-cache rollout with left-padded
prompts on "probability tensor contains inf, nan or element < 0". Without compile, the shipped tiny base
gives the same greedy tokens padded and unpadded. This script adds compile on the CPU (transformers compiles
only on accelerators unless ``CompileConfig._compile_all_devices`` is set, which it sets here) and checks,
on the shipped tiny base in fp32 and bf16:

1. greedy: each row of a left-padded batch of two prompts of different lengths (three images each) gives
   the tokens of the same prompt decoded alone;
2. sampling at temperature 1.0 with top-k 0 (the GRPO rollout's settings) over the padded batch finishes,
   i.e. meets no non-finite probability.

Prints one JSON line per dtype and mode. Usage: python benchmarks/compile_padding_check.py [--tokens 16]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor
from transformers.generation.configuration_utils import CompileConfig

from repic.shipped import shipped_base_path


def prompts(processor) -> tuple[list[str], list[list[Image.Image]]]:
    """Two prompts of different lengths, each with two references and a query."""
    questions = ["Who is in the query image?", "Describe the query image, naming <bako> and <tumi> if present."]
    texts, images = [], []
    for number, question in enumerate(questions):
        content = [{"type": "image"}, {"type": "text", "text": "Name: <bako>"}, {"type": "image"},
                   {"type": "text", "text": "Name: <tumi>"}, {"type": "image"}, {"type": "text", "text": question}]
        texts.append(processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True))
        images.append([Image.new("RGB", (112, 112), (40 * number + 60 * k, 90, 200 - 50 * k)) for k in range(3)])
    return texts, images


def generate(model, processor, texts, images, *, tokens: int, sample: bool) -> list[list[int]]:
    inputs = processor(text=texts, images=images, return_tensors="pt", padding=True)
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    options = {"do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 1.0} if sample else {"do_sample": False}
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=tokens, min_new_tokens=tokens, cache_implementation="static",
                             pad_token_id=processor.tokenizer.pad_token_id, **options)
    return out[:, inputs["input_ids"].shape[1]:].tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=16)
    args = parser.parse_args()
    processor = AutoProcessor.from_pretrained(shipped_base_path())
    processor.tokenizer.padding_side = "left"
    texts, images = prompts(processor)
    for dtype in (torch.float32, torch.bfloat16):
        model = AutoModelForImageTextToText.from_pretrained(shipped_base_path(), dtype=dtype).eval()
        model.generation_config.compile_config = CompileConfig(fullgraph=False)
        model.generation_config.compile_config._compile_all_devices = True  # compile on the CPU too
        started = time.perf_counter()
        padded = generate(model, processor, texts, images, tokens=args.tokens, sample=False)
        alone = [generate(model, processor, [text], [image], tokens=args.tokens, sample=False)[0]
                 for text, image in zip(texts, images, strict=True)]
        print(json.dumps({"dtype": str(dtype).removeprefix("torch."), "mode": "greedy, compiled, static cache",
                          "padded_equals_alone": padded == alone, "seconds": round(time.perf_counter() - started, 1)}),
              flush=True)
        torch.manual_seed(0)
        try:
            sampled = generate(model, processor, texts, images, tokens=args.tokens, sample=True)
            outcome = {"finished": True, "tokens": [len(row) for row in sampled]}
        except RuntimeError as exc:  # the GPU run's failure: non-finite sampling probabilities
            outcome = {"finished": False, "error": str(exc).splitlines()[0]}
        print(json.dumps({"dtype": str(dtype).removeprefix("torch."), "mode": "sampled t=1.0, compiled, static cache",
                          **outcome}), flush=True)


if __name__ == "__main__":
    main()
