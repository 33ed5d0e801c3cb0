"""Real model families end to end through the CLI: caption, GRPO and SFT with LoRA, merge with its check.

Qwen3-VL, LLaVA (CLIP + Llama) and Idefics3 (SmolVLM's architecture) differ in processor class, chat
template and image-token scheme (see ``tiny_families``); each goes through the same commands as the
paper's Qwen2.5-VL. Several images per prompt (references + query) in batches of two.
"""

from __future__ import annotations

import json

import pytest
from PIL import Image

from repic.concepts import ConceptDatabase
from repic.models import family_of, load_policy
from repic.records import Concept
from tiny_families import FAMILIES, build_family

pytestmark = pytest.mark.slow
COLOURS = {"bo": (220, 30, 30), "kim": (30, 30, 220)}
LORA = ["model.finetune=lora", "model.lora.r=4", "model.lora.alpha=8", "run.threads=1", "run.logging_steps=1",
        "run.save_steps=100"]  # fmt: skip
GRPO = [*LORA, "grpo.num_generations=2", "grpo.prompts_per_step=2", "grpo.max_completion_length=4",
        "grpo.warmup.steps=0", "run.sample_every=0"]  # fmt: skip
SFT = [*LORA, "sft.rows_per_step=2"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two concepts with references, four scenes, a training file (OCT + ICT, two images a row), SFT rows
    with captions, an evaluation file of two-reference captions, and the database."""
    root = tmp_path_factory.mktemp("family-data")
    for name, colour in COLOURS.items():
        Image.new("RGB", (48, 40), colour).save(root / f"{name}.png")
    for number, name in enumerate(["bo", "kim", "bo", "kim"]):
        scene = Image.new("RGB", (64, 56), (240, 240, 240))
        scene.paste(Image.new("RGB", (24, 24), COLOURS[name]), (8 + 4 * number, 8))
        scene.save(root / f"s{number}.png")
    database = ConceptDatabase(root / "database.json")
    for name in COLOURS:
        database.add(Concept(name, name, "toy", f"a {name} toy", [root / f"{name}.png"]), store="reference")
    database.save()
    train = []
    for number, name in enumerate(["bo", "kim", "bo", "kim"]):
        train.append({"image": [f"{name}.png", f"s{number}.png"], "problem": f"Is <{name}> in the image?",
                      "solution": "yes", "accu_reward_method": "yes_no"})  # fmt: skip
        train.append({"image": [f"{name}.png", f"s{number}.png"], "problem": f"Name: <{name}>. Describe it.",
                      "solution": f"<{name}>", "accu_reward_method": "yes_no_name",
                      "caption": f"<{name}> is a toy on a white table."})  # fmt: skip
    (root / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in train))
    rows = [{"image": f"s{n}.png", "task": "ict_multi", "concepts": ["<bo>", "<kim>"], "question": "Who is here?",
             "references": ["bo.png", "kim.png"], "reference_concepts": ["<bo>", "<kim>"]} for n in range(4)]
    (root / "two.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


@pytest.mark.parametrize("family", FAMILIES)
def test_family_captions_trains_and_merges(family, data, tmp_path, run_cli):
    model = build_family(family, tmp_path / "model")
    assert family_of(load_policy(model).model).name == family
    captioned = run_cli("caption", model, "--eval", data / "two.jsonl", "--database", data / "database.json",
                        "--batch-size", "2", "--max-new-tokens", "3", "--out", tmp_path / "captions")  # fmt: skip
    assert captioned.exit_code == 0, captioned.stderr
    assert "answered 4 queries, skipped 0" in " ".join(captioned.stdout.split())
    rows = json.loads((tmp_path / "captions" / "captions.json").read_text())
    assert len(rows) == 4 and all(row[1] == ["<bo>", "<kim>"] for row in rows)

    grpo = run_cli("train", "grpo", "--data", data / "train.jsonl", "--model", model, "--out", tmp_path / "grpo",
                   "--max-steps", "2", *[arg for item in GRPO for arg in ("--set", item)])  # fmt: skip
    assert grpo.exit_code == 0, grpo.stderr
    adapter = tmp_path / "grpo" / "final"
    assert (adapter / "adapter_config.json").is_file()

    sft = run_cli("train", "sft", "--data", data / "train.jsonl", "--model", model, "--out", tmp_path / "sft",
                  "--max-steps", "2", *[arg for item in SFT for arg in ("--set", item)])  # fmt: skip
    assert sft.exit_code == 0, sft.stderr
    assert (tmp_path / "sft" / "final" / "adapter_config.json").is_file()

    merged = run_cli("merge", adapter, "--out", tmp_path / "merged", "--max-new-tokens", "3")
    assert merged.exit_code == 0, merged.stderr
    record = json.loads(next((tmp_path / "merged").glob("*merge*.json")).read_text())
    assert record["check"]["passed"] is True
