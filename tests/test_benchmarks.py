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


TOWER_RETRIEVAL = Path(__file__).resolve().parents[1] / "benchmarks" / "tower_retrieval.py"


def test_tower_retrieval_benchmark_measures_both_view_choices_on_the_same_queries(tmp_path):
    from repic.data.collection import load_collection
    from repic.data.tasks import build
    from repic.world.demo.settings import QUICK_BUILD, QUICK_WORLD
    from repic.world.synthetic import generate_world

    generate_world(tmp_path / "world", QUICK_WORLD)
    build(load_collection(tmp_path / "world"), tmp_path / "data", QUICK_BUILD)
    spec = importlib.util.spec_from_file_location("tower_retrieval", TOWER_RETRIEVAL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    summary = module.main([str(tmp_path / "data")])
    numbers = summary["builds"][str(tmp_path / "data")]
    rows = {"single": len((tmp_path / "data" / "eval" / "single.jsonl").read_text().splitlines()),
            "two": len((tmp_path / "data" / "eval" / "two.jsonl").read_text().splitlines())}  # fmt: skip
    for split, count in rows.items():
        assert set(numbers[split]) == {"tokens", "tokens_and_windows"}
        for measured in numbers[split].values():
            assert measured["queries"] == count > 0
            assert 0 <= measured["top1"] <= 1 and 0 <= measured["recall_at_k"] <= 1
            assert 0 < measured["median_ms"] <= measured["p95_ms"]
    # the windows are 81 more embeddings per query: they cost time
    assert numbers["single"]["tokens_and_windows"]["median_ms"] > numbers["single"]["tokens"]["median_ms"]
