"""The GPU GRPO benchmark runs end to end on the CPU (``--shrink``) and reports every number it promises."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_grpo_check.py"


@pytest.mark.slow
def test_gpu_grpo_check_shrunk_measures_every_phase_in_one_call(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_grpo_check", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    log = tmp_path / "log.jsonl"
    summary = module.main(["--shrink", "--steps", "2", "--log", str(log)])
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines[-1] == summary and summary["skipped"] == []
    assert set(summary["settings"]) == {"dynamic", "static_compiled"}
    for numbers in summary["settings"].values():
        assert {"cold_step_s", "warm_step_s", "warm_generation_s", "warm_scoring_s", "warm_update_s",
                "peak_gib"} <= set(numbers)  # fmt: skip
        assert numbers["vision_trainable"] == 0 and numbers["trainable"] > 0
    steps = [line for line in lines if line["phase"] == "repic_step"]
    assert [(s["setting"], s["cold"]) for s in steps] == [
        ("dynamic", True), ("dynamic", False), ("static_compiled", True), ("static_compiled", False)
    ]
    baseline = summary["baseline_hf_generate_dynamic"]
    assert baseline["cold_s"] > 0 and baseline["warm_tokens_per_s"] > 0
    assert summary["fastest_warm_step_s"] == min(n["warm_step_s"] for n in summary["settings"].values())
