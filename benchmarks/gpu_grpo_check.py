"""GPU check of repic's GRPO trainer at real scale: the paper's recipe on a Qwen2.5-VL-7B-shaped model.

Builds Qwen2.5-VL-7B-Instruct's configuration (written out below) with random bf16 weights made directly
on the GPU (no download), and a few RePIC ICT samples with 2 reference images and a query at 448x448
(random pixels, ~860 prompt tokens). One call measures everything it reports, within ``--budget-s``
(default 450 s, so it ends inside an 8-minute slot; a phase that would start later is listed as skipped):

1. **repic's trainer**, once per setting: ``repic.train.train_grpo`` with the ``paper-qwen2.5-vl-7b`` recipe
   (LoRA r64 / alpha 128 / dropout 0.05, vision frozen, G = 8, beta 0.04, loss grpo, lr 1e-5, bf16,
   256-token completions at temperature 1.0, gradient checkpointing) for ``--steps`` steps of one GPU's
   share of the paper's batch (1 prompt x 8 completions, as each of the paper's 8 GPUs took per forward
   pass), on a freshly built model each. Settings: ``dynamic`` (the default rollouts) and
   ``static_compiled`` (repic's fastest: static KV cache with compiled decoding; on a CPU the static cache
   alone, since transformers compiles decoding on accelerators only). Completions are forced to the full
   256 tokens (``min_new_tokens``). Step 1 is the cold one (it compiles the decoder); the rest are warm.
2. **the baseline**: plain HF ``generate`` with the dynamic cache, 8 x 256 sampled tokens of the same
   prompt on the same LoRA-wrapped model (the official scripts' path), timed cold and warm.

Prints one JSON line per phase (each with its own peak GPU memory): seconds per step split into generation
(rollouts), scoring (rewards, reference log-probabilities, advantages) and update (forward, backward,
optimizer), and tokens/s; then one ``summary`` line with every number, the fastest warm step and whether
it meets the goal (warm step <= 5 s on one H200). ``tests/test_benchmarks.py`` runs it with ``--shrink``.

The processor is repic's Qwen2.5-VL processor around the tiny tokenizer (the real one cannot be downloaded
here); the model keeps Qwen's 152,064-row vocabulary so the embedding and lm_head are real-sized.

Usage: python benchmarks/gpu_grpo_check.py [--shrink] [--steps 3] [--budget-s 450] [--log FILE]
       (--shrink: a tiny model and short completions on the CPU, to check the script in seconds)

Measured so far (H200, torch 2.11, transformers 5.17, TRL 1.16 wheel): imports and the 8.29 B-parameter
model (15.5 GiB) were fine; with prompts left-padded to a multiple of 64 the first compiled, static-cache
rollout stopped on a CUDA assert ("probability tensor contains inf, nan or element < 0"); the run without
padding did not finish inside its 270-s slot, so no step time is recorded yet. On the CPU, compiled
static-cache decoding of a left-padded batch of the shipped tiny base stays finite and gives each row the
tokens it gets alone, in fp32 and bf16 (``compile_padding_check.py``), so that failure needs CUDA or the
7B random weights. This version (one call, both settings, the baseline) has not run on a GPU yet.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from repic.data.samples import write_samples
from repic.prompts import TRAIN_CAPTION_QUESTIONS, ict_problem
from repic.records import Sample
from repic.train import load_config, train_grpo
from repic.world.tiny import TinyModelConfig, qwen2_5_vl_config, tiny_processor
from repic.world.tokenizer import builtin_corpus, train_tiny_tokenizer

# Qwen/Qwen2.5-VL-7B-Instruct config.json (the fields that shape the model).
QWEN25_VL_7B = {
    "model_type": "qwen2_5_vl",
    "tie_word_embeddings": False,
    "text_config": {
        "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
        "num_key_value_heads": 4, "max_position_embeddings": 128000, "rms_norm_eps": 1e-6, "vocab_size": 152064,
        "hidden_act": "silu", "max_window_layers": 28, "use_sliding_window": False,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
    },
    "vision_config": {
        "depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": 3584,
        "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
        "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2, "hidden_act": "silu", "in_channels": 3,
    },
}
SIDE = 448  # pixels of every image: 16 x 16 patches merged 2 x 2 = 256 image tokens
GENERATIONS, COMPLETION_TOKENS = 8, 256


LOG: Path | None = None  # --log: every line is also appended here at once, so a run cut short keeps them


def report(**fields) -> None:
    line = json.dumps(fields)
    print(line, flush=True)
    if LOG is not None:
        with LOG.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def build_model(tokenizer, shrink: bool, device: str):
    """The 7B-shaped model with random weights made on ``device`` (or the tiny one with ``--shrink``)."""
    if shrink:
        config = qwen2_5_vl_config(TinyModelConfig(), tokenizer)
        dtype = torch.float32
    else:
        config = Qwen2_5_VLConfig(**QWEN25_VL_7B)
        ids = qwen2_5_vl_config(TinyModelConfig(), tokenizer)  # the special token ids of this tokenizer
        for name in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"):
            setattr(config, name, getattr(ids, name))
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            setattr(config.text_config, name, getattr(ids.text_config, name))
        dtype = torch.bfloat16
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype, attn_implementation="sdpa")
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def write_data(folder: Path, side: int, count: int = 8) -> Path:
    """``count`` caption samples (ICT and ICT-multi in turn), each 2 references + a query of random pixels."""
    rng = np.random.default_rng(0)
    references = [("<bako>", "a red bear with blue stripes"), ("<tumi>", "a green cup with dots")]
    samples = []
    for index in range(count):
        images = []
        for part in ("ref_a", "ref_b", "query"):
            path = folder / f"{index}_{part}.png"
            Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(path)
            images.append(path.name)
        problem = ict_problem(references, TRAIN_CAPTION_QUESTIONS[index % len(TRAIN_CAPTION_QUESTIONS)])
        task, solution = ("ict", "<bako>") if index % 2 == 0 else ("ict_multi", ["<bako>", "<tumi>"])
        samples.append(Sample(task, images, problem, solution))
    return write_samples(folder / "train.jsonl", samples)


SETTINGS = {  # name -> what it adds to the recipe: the trainer's default, and repic's fastest rollouts
    "dynamic": {},
    "static_compiled": {"grpo.rollout.cache_implementation": "static", "grpo.rollout.compile": True},
}


def repic_steps(model, processor, data: Path, out: Path, args, setting: str) -> tuple[list[dict], object]:
    """Train ``args.steps`` GRPO steps through repic's trainer; one dict of timings per step."""
    tokens = args.completion_tokens
    values = {
        "data.train_file": str(data),
        "run.output_dir": str(out),
        "run.device": "cuda" if torch.cuda.is_available() else "cpu",
        "run.precision": "bf16" if torch.cuda.is_available() else "fp32",
        "run.logging_steps": 1,
        "run.save_steps": 10**6,
        "run.sample_every": 0,
        "optim.max_steps": args.steps,
        "grpo.prompts_per_step": 1,
        "grpo.completions_per_device_batch": GENERATIONS,
        "grpo.max_completion_length": tokens,
        "grpo.rollout.generation_kwargs": {"min_new_tokens": tokens},
        "grpo.rollout.pad_prompts_to_multiple_of": None,  # every prompt here has the same length
        **SETTINGS[setting],
    }
    if not torch.cuda.is_available():  # transformers compiles decoding on accelerators only: static cache alone
        values.pop("grpo.rollout.compile", None)
    config = load_config("paper-qwen2.5-vl-7b", values=values)
    policy = SimpleNamespace(model=model, processor=processor)
    result = train_grpo(config, policy=policy)
    rows = [json.loads(line) for line in result.metrics_path.read_text().splitlines()]
    steps = []
    for row in rows:
        if row.get("summary"):
            continue
        generation = row["time/generation"]
        scoring = row["time/generate_and_score"] - generation
        completion_tokens = row["completions/mean_length"] * GENERATIONS
        steps.append({
            "step": row["step"],
            "cold": row["step"] == 1,
            "seconds": round(row["time/step"], 2),
            "generation_s": round(generation, 2),
            "scoring_s": round(scoring, 2),
            "update_s": round(row["time/update"], 2),
            "rewards_s": round(row["time/rewards"], 3),
            "completion_tokens": int(completion_tokens),
            "generation_tokens_per_s": round(completion_tokens / generation, 1),
        })
    return steps, result


def mean(rows: list[dict], key: str) -> float:
    return round(sum(row[key] for row in rows) / len(rows), 2)


def baseline_generate(model, processor, data: Path, args) -> list[float]:
    """Seconds of plain HF ``generate`` (dynamic cache), 8 x ``completion_tokens`` sampled: a cold call, a warm one."""
    from repic.data.samples import load_samples
    from repic.train.dataset import grpo_rows

    row = grpo_rows(load_samples(data)[:1])[0]
    text = processor.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
    images = [Image.open(path).convert("RGB") for path in row["images"]]
    inputs = processor(text=[text] * GENERATIONS, images=images * GENERATIONS, return_tensors="pt", padding=True)
    inputs = inputs.to(next(model.parameters()).device)
    if torch.cuda.is_available():
        inputs["pixel_values"] = inputs["pixel_values"].to(torch.bfloat16)
    model.eval()
    times = []
    for _ in range(2):
        sync()
        start = time.perf_counter()
        with torch.no_grad():
            model.generate(**inputs, max_new_tokens=args.completion_tokens, min_new_tokens=args.completion_tokens,
                           do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                           pad_token_id=processor.tokenizer.pad_token_id)
        sync()
        times.append(round(time.perf_counter() - start, 2))
    return times, int(inputs["input_ids"].shape[1])


def peak_gib() -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None


def reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def main(argv: list[str] | None = None) -> dict:
    """Run every phase once (each reports its own peak memory), then one summary line; returns the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shrink", action="store_true", help="tiny model, short completions, CPU: a dry run")
    parser.add_argument("--steps", type=int, default=3, help="steps per setting: the first is cold, the rest warm")
    parser.add_argument("--budget-s", type=float, default=450.0,
                        help="skip a phase that would start after this many seconds (the slot is 8 minutes)")
    parser.add_argument("--log", type=Path, help="also append each JSON line to this file as it is made")
    args = parser.parse_args(argv)
    global LOG
    LOG = args.log
    args.completion_tokens = 8 if args.shrink else COMPLETION_TOKENS
    device = "cuda" if torch.cuda.is_available() and not args.shrink else "cpu"
    side = 112 if args.shrink else SIDE

    start = time.perf_counter()
    tokenizer = train_tiny_tokenizer(builtin_corpus())
    sizes = TinyModelConfig(min_pixels=side * side, max_pixels=side * side)
    processor = tiny_processor(sizes, tokenizer)
    processor.tokenizer.padding_side = "left"
    summary: dict = {"phase": "summary", "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
                     "torch": torch.__version__, "settings": {}, "skipped": []}
    with tempfile.TemporaryDirectory(prefix="repic-gpu-grpo-") as scratch:
        data = write_data(Path(scratch), side)
        model = None
        for setting in SETTINGS:
            elapsed = time.perf_counter() - start
            if elapsed > args.budget_s:
                summary["skipped"].append(f"{setting}: {elapsed:.0f} s of the {args.budget_s:.0f} s budget used")
                continue
            del model  # each setting trains a fresh model: TRL wraps the one it gets in LoRA layers
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            reset_peak()
            built = time.perf_counter()
            model = build_model(tokenizer, args.shrink, device)
            sync()
            report(phase="init", setting=setting, seconds=round(time.perf_counter() - built, 1),
                   params_b=round(sum(p.numel() for p in model.parameters()) / 1e9, 3))
            reset_peak()
            steps, result = repic_steps(model, processor, data, Path(scratch) / setting, args, setting)
            for step in steps:
                report(phase="repic_step", setting=setting, **step)
            warm = [step for step in steps if not step["cold"]] or steps
            summary["settings"][setting] = {
                "cold_step_s": steps[0]["seconds"], "warm_step_s": mean(warm, "seconds"),
                "warm_generation_s": mean(warm, "generation_s"), "warm_scoring_s": mean(warm, "scoring_s"),
                "warm_update_s": mean(warm, "update_s"), "peak_gib": peak_gib(),
                "trainable": result.trainable["trainable"],
                "vision_trainable": result.trainable["parts"]["vision"]["trainable"],
            }  # fmt: skip
            report(phase="repic_summary", setting=setting, **summary["settings"][setting])
        if model is not None and time.perf_counter() - start <= args.budget_s:
            # TRL put the LoRA layers into this very model, so the baseline runs the same LoRA-wrapped network
            reset_peak()
            times, prompt_tokens = baseline_generate(model, processor, data, args)
            tokens = GENERATIONS * args.completion_tokens
            summary["baseline_hf_generate_dynamic"] = {
                "prompt_tokens": prompt_tokens, "cold_s": times[0], "warm_s": times[-1],
                "warm_tokens_per_s": round(tokens / times[-1], 1), "peak_gib": peak_gib(),
            }  # fmt: skip
            report(phase="baseline_hf_generate_dynamic", **summary["baseline_hf_generate_dynamic"])
        else:
            summary["skipped"].append("baseline_hf_generate_dynamic: out of budget")
    measured = [values["warm_step_s"] for values in summary["settings"].values()]
    summary["fastest_warm_step_s"] = min(measured) if measured else None
    summary["goal_warm_step_le_5s"] = bool(measured) and min(measured) <= 5.0
    summary["seconds"] = round(time.perf_counter() - start, 1)
    report(**summary)
    return summary


if __name__ == "__main__":
    main()
