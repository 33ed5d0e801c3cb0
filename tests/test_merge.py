"""LoRA merging: the merged folder matches base+adapter, a damaged merge is caught and explained, errors are clear.

Adapters are made without training on a freshly built tiny model: LoRA r 4 with ``lora_B`` drawn at random
(PEFT starts it at zero), so the adapter really changes the outputs and a merge that drops or rounds it
away can be told apart from a good one. Checks generate 4 tokens per prompt to stay fast.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import AutoModelForImageTextToText

from repic.errors import RepicError
from repic.models import LoraSettings, load_policy
from repic.models.merge import RECORD_NAME, check_merge, merge_adapter, mismatch_causes
from repic.models.merge_check import (
    MergeCheck,
    PromptComparison,
    compare,
    default_check_prompts,
    load_check_prompts,
    reference_outputs,
)
from repic.world.tiny import TinyModelConfig, build_tiny_model

CORPUS = [f"{name} is a small dog on the table. Is {name} in this image? yes" for name in ("<bo>", "<kim>")]
TOKENS = 4  # answer length of every check here
# PEFT's get_peft_model (making the test adapters) asks for a name transformers 5 deprecated
pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")
LORA_LAYERS = 14  # 2 language layers x 7 linear layers (q, k, v, o, gate, up, down)


def make_adapter(base_dir, out_dir, *, b_std: float | None, seed: int = 0):
    """A LoRA adapter for ``base_dir`` whose ``lora_B`` is drawn with ``b_std`` (None: PEFT's zeros)."""
    policy = load_policy(base_dir, lora=LoraSettings(r=4, alpha=8, dropout=0.0))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in policy.model.named_parameters():
            if "lora_B" in name and b_std is not None:
                param.copy_(torch.randn(param.shape, generator=generator) * b_std)
    policy.model.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model's matrices are too small to gain from threads, and on a shared CPU they lose a lot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("base") / "tiny", texts=CORPUS)


@pytest.fixture(scope="module")
def adapter_dir(tiny_dir, tmp_path_factory):
    return make_adapter(tiny_dir, tmp_path_factory.mktemp("adapter") / "lora", b_std=0.05)


@pytest.fixture(scope="module")
def merged(adapter_dir, tmp_path_factory):
    """The default merge (float32) with the default, multi-image check prompts."""
    out = tmp_path_factory.mktemp("merged") / "model"
    return out, merge_adapter(adapter_dir, out, max_new_tokens=TOKENS)


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory):
    """One text-only prompt and one with an image, in the JSONL check-prompt format."""
    folder = tmp_path_factory.mktemp("prompts")
    Image.new("RGB", (112, 112), (200, 40, 40)).save(folder / "red.png")
    rows = [{"text": "Say hello."}, {"text": "Is <bo> in this image?", "images": ["red.png"]}]
    (folder / "prompts.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder / "prompts.jsonl"


# --- a good merge ------------------------------------------------------------------------------------


def test_float32_merge_matches_base_plus_adapter(merged):
    out, report = merged
    check = report.check
    assert report.passed is True and check.failures == []
    assert check.greedy_equal == len(check.prompts) == 4  # the four default prompts
    assert check.argmax_mismatches == 0
    assert check.max_abs_logit_diff < 1e-4  # summation order only; measured 0 to 5e-7
    # one logit position per generated token plus the last one, on every prompt
    assert [p.positions for p in check.prompts] == [TOKENS + 1] * 4
    assert report.weights.layers == LORA_LAYERS
    assert report.weights.update_norm > 0 and report.weights.rounding_error == 0.0  # saved exactly as merged
    assert check.causes == []  # float32 throughout and passed: nothing to explain


def test_merged_folder_is_a_plain_model_folder_with_its_record(merged):
    out, report = merged
    names = {path.name for path in out.iterdir()}
    expected = {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json", RECORD_NAME}
    assert expected <= names
    assert "adapter_config.json" not in names  # nothing PEFT-specific is left
    record = json.loads((out / RECORD_NAME).read_text())
    assert record["dtype"] == record["merge_dtype"] == "float32"
    assert record["check"]["passed"] is True and record["check"]["greedy_equal"] == 4
    assert record["adapter_settings"]["r"] == 4 and record["adapter_settings"]["lora_alpha"] == 8
    model = AutoModelForImageTextToText.from_pretrained(out)
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert not list(out.parent.glob(f".{out.name}.*"))  # no staging folder left behind


def test_the_adapter_changes_the_outputs_so_the_check_can_fail(tiny_dir, merged):
    out, _ = merged
    prompts = default_check_prompts()[:1]
    against_base = compare(load_policy(out), reference_outputs(load_policy(tiny_dir), prompts, TOKENS), 1e-2)
    # the merged model is far from the bare base: the random lora_B moves the logits by much more than 1e-2
    assert against_base.max_abs_logit_diff > 0.1
    assert not against_base.passed


# --- damaged merges ----------------------------------------------------------------------------------


def test_bf16_save_of_a_large_adapter_is_detected_and_explained(tiny_dir, tmp_path, run_cli):
    adapter = make_adapter(tiny_dir, tmp_path / "large", b_std=1.0)
    out = tmp_path / "merged-bf16"
    result = run_cli("merge", adapter, "--out", out, "--dtype", "bf16", "--max-new-tokens", TOKENS)
    assert result.exit_code == 1
    assert "does not match base+adapter" in result.stderr and "saved in bfloat16" in result.stderr
    record = json.loads((out / RECORD_NAME).read_text())  # written anyway, marked as failed
    assert record["check"]["passed"] is False
    assert record["check"]["max_abs_logit_diff"] > 1e-2  # bf16 weights moved the logits past the tolerance
    assert 0 < record["weights"]["rounding_error"] < 0.01  # bf16 keeps ~3 digits of a large update
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"


@pytest.mark.parametrize(
    ("edit", "passes"),
    [
        (False, True),  # control: the folder merge_adapter wrote passes a separate check
        (True, False),  # the same folder with lm_head doubled: every logit doubles
    ],
)
def test_check_merge_detects_an_edited_weight(adapter_dir, merged, prompts_file, tmp_path, edit, passes):
    out, _ = merged
    copy = shutil.copytree(out, tmp_path / "copy")
    if edit:
        weights = load_file(copy / "model.safetensors")
        weights["lm_head.weight"] *= 2
        save_file(weights, copy / "model.safetensors", metadata={"format": "pt"})
    check = check_merge(adapter_dir, copy, check_prompts=prompts_file, max_new_tokens=TOKENS)
    assert check.passed is passes
    assert len(check.prompts) == 2  # the file's two prompts
    if not passes:
        assert check.max_abs_logit_diff > 1e-2
        assert "rounding cannot explain" in check.causes[0]  # float32 record and config: not a dtype effect


def _check(diff: float, mismatches: int = 0, equal: bool = True) -> MergeCheck:
    return MergeCheck([PromptComparison("p", 5, diff, mismatches, equal, "a", "a" if equal else "b")], 1e-2)


@pytest.mark.parametrize(
    ("check", "merge_dtype", "saved_dtype", "expected"),
    [
        (_check(1e-7), torch.float32, torch.float32, []),  # exact merge, passed: nothing to explain
        (_check(0.3), torch.bfloat16, torch.float32, ["merged in bfloat16"]),
        (_check(0.3), torch.float32, torch.bfloat16, ["saved in bfloat16"]),
        (_check(0.3), torch.bfloat16, torch.bfloat16, ["merged in bfloat16", "saved in bfloat16"]),
        (_check(0.3), torch.float32, torch.float32, ["rounding cannot explain"]),  # float32 yet failed
        (_check(0.3), None, torch.float32, ["rounding cannot explain"]),  # merge dtype unknown (check_merge)
    ],
)
def test_mismatch_causes_follow_the_dtypes(check, merge_dtype, saved_dtype, expected):
    causes = mismatch_causes(check, merge_dtype, saved_dtype)
    assert len(causes) == len(expected)
    assert all(start in cause for cause, start in zip(causes, expected, strict=True))


@pytest.mark.parametrize(
    ("check", "failures"),
    [
        (_check(5e-3), []),  # under the 1e-2 tolerance, same argmax and answer
        (_check(2e-2), ["exceeds the tolerance"]),
        (_check(5e-3, mismatches=1), ["differs at 1 of 5 positions"]),
        (_check(5e-3, equal=False), ["differ on 1 of 1 prompts"]),
    ],
)
def test_each_criterion_fails_the_check_on_its_own(check, failures):
    assert len(check.failures) == len(failures)
    assert all(part in text for text, part in zip(check.failures, failures, strict=True))


def test_an_untrained_adapter_is_reported_as_changing_nothing(tiny_dir, tmp_path, run_cli):
    adapter = make_adapter(tiny_dir, tmp_path / "zero", b_std=None)
    result = run_cli("merge", adapter, "--out", tmp_path / "out", "--no-check")
    assert result.exit_code == 0
    assert "changed no weight" in result.stdout and "no check run" in result.stdout
    record = json.loads((tmp_path / "out" / RECORD_NAME).read_text())
    assert record["weights"]["rounding_error"] is None and record["check"] is None


@pytest.mark.parametrize("merge_dtype", ["float32", "bf16"])  # rounded on save only, or also while merging
def test_an_update_lost_in_rounding_is_reported_even_without_a_check(tiny_dir, tmp_path, merge_dtype):
    # lora_B ~ 1e-5 times lora_A ~ 0.03 over r 4, x2 scaling: BA ~ 1e-6 per weight, far below bf16's rounding
    # of the base's ~0.02 weights (steps of 2^-13 ~ 1.2e-4, so errors of ~3e-5): measured 17x the update
    adapter = make_adapter(tiny_dir, tmp_path / "faint", b_std=1e-5)
    report = merge_adapter(adapter, tmp_path / "out", dtype="bf16", merge_dtype=merge_dtype, check=False)
    assert report.weights.layers == LORA_LAYERS
    assert report.weights.rounding_error > 1  # the rounding is larger than the update itself
    assert len(report.notes) == 1 and "times the adapter's update" in report.notes[0]
    assert report.passed is None  # no check ran


def test_cli_prints_the_check_table(adapter_dir, prompts_file, tmp_path, run_cli):
    out = tmp_path / "merged"
    result = run_cli(
        "merge", adapter_dir, "--out", out, "--prompts", prompts_file, "--max-new-tokens", TOKENS
    )
    assert result.exit_code == 0, result.stderr
    assert "check passed" in result.stdout
    assert "line 2" in result.stdout and "2 / 2" in result.stdout  # the file's prompts, both answers equal
    assert f"0 / {2 * (TOKENS + 1)}" in result.stdout  # no argmax differs over 2 x 5 positions


# --- errors ------------------------------------------------------------------------------------------


def _config_without_weights(folder):
    folder.mkdir()
    (folder / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "base_model_name_or_path": "x"})
    )


def _prefix_tuning(folder):
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "PREFIX_TUNING"}))
    (folder / "adapter_model.safetensors").write_bytes(b"")


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        (lambda folder: None, "does not exist"),
        (lambda folder: folder.mkdir(), "no adapter_config.json"),
        (lambda folder: folder.write_text("x"), "is a file"),
        (_config_without_weights, "no adapter weights"),
        (_prefix_tuning, "LoRA adapters only"),
    ],
)
def test_a_folder_that_is_not_a_lora_adapter_is_refused(tmp_path, prepare, message):
    prepare(tmp_path / "adapter")
    with pytest.raises(RepicError, match=message):
        merge_adapter(tmp_path / "adapter", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_full_model_folder_is_named_as_such(tiny_dir, tmp_path):
    with pytest.raises(RepicError, match="holds a full model"):
        merge_adapter(tiny_dir, tmp_path / "out")


def test_a_missing_base_names_where_it_came_from_and_the_fix(adapter_dir, tmp_path):
    moved = shutil.copytree(adapter_dir, tmp_path / "adapter")
    config = json.loads((moved / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "gone")
    (moved / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(RepicError, match="adapter_config.json") as raised:
        merge_adapter(moved, tmp_path / "out", check=False)
    assert "gone" in str(raised.value) and "--base" in str(raised.value)
    with pytest.raises(RepicError, match="from --base"):
        merge_adapter(moved, tmp_path / "out", base=tmp_path / "also-gone", check=False)


def test_a_base_of_another_shape_is_refused_before_anything_is_written(adapter_dir, tmp_path):
    narrow = TinyModelConfig(text_hidden_size=64, text_heads=2, text_kv_heads=1, text_intermediate_size=128)
    other = build_tiny_model(tmp_path / "narrow", texts=CORPUS, config=narrow)
    with pytest.raises(RepicError, match="does not fit the base model") as raised:
        merge_adapter(adapter_dir, tmp_path / "out", base=other)
    assert "size mismatch" in str(raised.value) and "--base" in str(raised.value)
    assert not (tmp_path / "out").exists()


def test_the_output_may_not_replace_the_adapter_or_existing_work(adapter_dir, tmp_path):
    with pytest.raises(RepicError, match="would replace the adapter folder"):
        merge_adapter(adapter_dir, adapter_dir.parent)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(RepicError, match="--overwrite"):
        merge_adapter(adapter_dir, tmp_path / "taken")
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"text": "ok"}', "{not json"], "line 2 is not JSON"),
        (['{"images": []}'], 'line 1 needs a non-empty "text"'),
        (['{"text": "a", "images": "x.png"}'], '"images" must be a list'),
        (['{"text": "a", "images": ["missing.png"]}'], "cannot read the image"),
        (["", "  "], "holds no prompts"),
    ],
)
def test_bad_prompt_files_name_the_line(tmp_path, lines, message):
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RepicError, match=message):
        load_check_prompts(path)


def test_a_truncated_base_or_adapter_is_refused_naming_the_file(adapter_dir, truncated_base, tmp_path, run_cli):
    result = run_cli("merge", adapter_dir, "--base", truncated_base, "--out", tmp_path / "out")
    said = " ".join(result.stderr.split())
    assert result.exit_code == 2 and f"{truncated_base / 'model.safetensors'} is truncated or damaged" in said
    assert "re-download or re-save the checkpoint" in said and "--base" not in said  # the base is right, its file is not
    cut = shutil.copytree(adapter_dir, tmp_path / "cut-adapter")
    weights = cut / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    result = run_cli("merge", cut, "--out", tmp_path / "out")
    said = " ".join(result.stderr.split())
    assert result.exit_code == 2 and f"{weights} is truncated or damaged" in said and "does not fit" not in said
    assert not (tmp_path / "out").exists() and "Traceback" not in result.stderr


def test_cli_reports_user_errors_without_a_traceback(tmp_path, run_cli):
    result = run_cli("merge", tmp_path / "nowhere", "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert "adapter folder" in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr
