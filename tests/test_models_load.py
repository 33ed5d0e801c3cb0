"""Loading policies: where models come from, dtypes, training modes, LoRA placement, clear errors.

Real loads use the tiny Qwen2.5-VL model built once per module; the generic part discovery is also
checked on hand-made toy modules whose parameter counts are easy to verify by hand.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from peft import get_peft_model
from PIL import Image
from transformers import AutoModelForImageTextToText, LlamaConfig, Qwen2_5_VLConfig, Qwen3VLConfig

from repic.errors import RepicError
from repic.models import (
    LoraSettings,
    build_lora_config,
    describe_trainable,
    load_policy,
    resolve_dtype,
    vision_module_names,
)
from repic.world.tiny import build_tiny_model

NAMES = ["<bako>", "<tumi>", "<lesa>"]
LANGUAGE_LINEARS = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    corpus = [f"{name} is a small dog on the table. Is {name} in this image? yes" for name in NAMES] * 10
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny", texts=corpus)


def params_under(model, prefix_part: str):
    return [(name, p) for name, p in model.named_parameters() if f".{prefix_part}." in f".{name}"]


# --- generic part discovery on toy models -----------------------------------------------------------


class ToyVLM(torch.nn.Module):
    """A vision tower, a projector, a language layer and an output head under configurable names."""

    def __init__(self, tower: str, projector: str | None):
        super().__init__()
        self.model = torch.nn.Module()
        setattr(self.model, tower, torch.nn.Sequential(torch.nn.Linear(2, 3)))  # 2*3 + 3 = 9 parameters
        if projector:
            setattr(self.model, projector, torch.nn.Linear(3, 4))  # 3*4 + 4 = 16 parameters
        self.model.language_model = torch.nn.Sequential(torch.nn.Linear(4, 4))  # 4*4 + 4 = 20 parameters
        self.lm_head = torch.nn.Linear(4, 5, bias=False)  # 4*5 = 20 parameters

    def get_output_embeddings(self):
        return self.lm_head


@pytest.mark.parametrize(
    ("tower", "projector", "vision_params"),
    [
        ("visual", None, 9),  # Qwen2.5-VL / Qwen3-VL: the merger lives inside `visual`
        ("vision_tower", "multi_modal_projector", 9 + 16),  # LLaVA, Gemma 3, PaliGemma
        ("vision_model", "connector", 9 + 16),  # Idefics3 / SmolVLM
    ],
)
def test_parts_are_found_by_common_attribute_names(tower, projector, vision_params):
    toy = ToyVLM(tower, projector)
    assert vision_module_names(toy) == [f"model.{tower}"] + ([f"model.{projector}"] if projector else [])
    counts = describe_trainable(toy)
    assert counts["parts"]["vision"] == {"total": vision_params, "trainable": vision_params}
    assert counts["parts"]["language"]["total"] == 20
    assert counts["parts"]["lm_head"]["total"] == 20
    assert counts["total"] == vision_params + 20 + 20


def test_trainable_counts_follow_requires_grad():
    toy = ToyVLM("visual", None)
    toy.model.visual.requires_grad_(False)
    toy.lm_head.requires_grad_(False)
    # only the language layer's 20 parameters remain trainable, out of 9 + 20 + 20 = 49
    assert describe_trainable(toy)["trainable"] == 20
    assert describe_trainable(toy)["total"] == 49


def test_lora_config_targets_language_leaves_and_excludes_vision_and_head():
    toy = ToyVLM("vision_tower", "multi_modal_projector")
    config = build_lora_config(toy, LoraSettings(r=4, alpha=8))
    # language_model's Linear is the Sequential's child "0"; the vision side and lm_head are excluded by prefix
    assert sorted(config.target_modules) == ["0"]
    assert (
        config.exclude_modules == r"^(?:model\.vision_tower|model\.multi_modal_projector|lm_head)(?:\..*)?$"
    )
    assert (config.r, config.lora_alpha, config.lora_dropout) == (4, 8, 0.05)


def skeleton(config):
    """The model for ``config`` on the meta device: real module structure, no memory for weights."""
    with torch.device("meta"):
        return AutoModelForImageTextToText.from_config(config)


def test_paper_recipe_on_the_qwen2_5_vl_7b_architecture():
    qwen_7b = Qwen2_5_VLConfig(
        text_config={
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_hidden_layers": 28,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "vocab_size": 152064,
        },
        vision_config={
            "depth": 32,
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "out_hidden_size": 3584,
            "fullatt_block_indexes": [7, 15, 23, 31],
        },
    )
    model = get_peft_model(skeleton(qwen_7b), build_lora_config(skeleton(qwen_7b), LoraSettings()))
    counts = describe_trainable(model)
    assert counts["parts"]["lm_head"] == {"total": 152064 * 3584, "trainable": 0}  # vocab x hidden, frozen
    assert counts["parts"]["vision"]["trainable"] == 0
    # LoRA r=64 adds r*(in+out) per linear layer; KV width 4 heads x 128 = 512:
    # q,o 2*(3584+3584) + k,v 2*(3584+512) + gate,up,down 3*(3584+18944) = 90112 -> x64 x28 layers
    assert counts["trainable"] == 90112 * 64 * 28 == 161_480_704
    # without the adapter the model has the published 8.29B parameters of Qwen2.5-VL-7B-Instruct
    assert counts["total"] - counts["trainable"] == 8_292_166_656


def test_qwen3_vl_gets_lora_only_in_its_language_model():
    qwen3 = Qwen3VLConfig(
        text_config={
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "vocab_size": 1000,
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 64,
            "deepstack_visual_indexes": [1],
        },
    )
    base = skeleton(qwen3)
    assert vision_module_names(base) == ["model.visual"]  # blocks, merger and deepstack mergers inside it
    model = get_peft_model(base, build_lora_config(base, LoraSettings(r=4, alpha=8)))
    adapted = [name for name, _ in model.named_modules() if name.endswith(".lora_A")]
    assert len(adapted) == 2 * 7 and all(".language_model." in name for name in adapted)


# --- real loads of the tiny Qwen2.5-VL model ---------------------------------------------------------


def test_frozen_load_is_for_inference(tiny_dir):
    policy = load_policy(tiny_dir)
    assert policy.info.mode == "frozen" and policy.info.model_type == "qwen2_5_vl"
    assert policy.info.vision_modules == ["model.visual"]
    assert policy.info.parameters["trainable"] == 0
    assert not policy.model.training
    assert policy.processor.tokenizer.padding_side == "left"
    assert policy.info.dtype == "float32"  # "auto" on a CPU


def test_lora_goes_only_into_language_linears_and_vision_is_frozen(tiny_dir):
    policy = load_policy(tiny_dir, lora=LoraSettings(r=8, alpha=16))
    model = policy.model
    adapted = [name.removesuffix(".lora_A") for name, _ in model.named_modules() if name.endswith(".lora_A")]
    assert len(adapted) == 2 * 7  # 2 layers x 7 linear layers each
    assert all(".language_model.layers." in name for name in adapted)
    assert not any(".visual." in name or "lm_head" in name for name in adapted)
    assert {name.rsplit(".", 1)[-1] for name in adapted} == LANGUAGE_LINEARS
    assert policy.info.lora_targets == sorted(LANGUAGE_LINEARS)
    assert all(not p.requires_grad for _, p in params_under(model, "visual"))
    assert all(p.requires_grad == ("lora_" in name) for name, p in model.named_parameters())
    # r=8 on hidden 128, KV width 64 (2 heads x 32), MLP 256; per layer A+B = r*(in+out):
    # q,o: 8*(128+128)*2 = 4096; k,v: 8*(128+64)*2 = 3072; gate,up,down: 8*(128+256)*3 = 9216 -> 16384
    assert policy.info.parameters["parts"]["language"]["trainable"] == 2 * 16384


def test_lora_gradients_reach_only_the_adapter(tiny_dir):
    policy = load_policy(tiny_dir, lora=LoraSettings(r=4, alpha=8, dropout=0.0))
    processor, model = policy.processor, policy.model
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Is <bako> here?"}]}]
    )
    picture = Image.fromarray(np.zeros((56, 56, 3), dtype=np.uint8))
    inputs = processor(text=[text], images=[[picture]], return_tensors="pt")
    model.train()
    model(**inputs).logits.float().pow(2).mean().backward()
    with_grad = {name for name, p in model.named_parameters() if p.grad is not None}
    assert with_grad and all("lora_" in name for name in with_grad)


def test_lora_with_trainable_vision_trains_the_tower_in_full(tiny_dir):
    policy = load_policy(tiny_dir, lora=LoraSettings(r=4, alpha=8), freeze_vision=False)
    model = policy.model
    assert not any(".visual." in name for name, _ in model.named_modules() if name.endswith(".lora_A"))
    trainable_copy = [p for name, p in params_under(model, "visual") if ".modules_to_save." in name]
    assert trainable_copy and all(p.requires_grad for p in trainable_copy)


@pytest.mark.parametrize(
    ("freeze_vision", "vision_trainable"),
    [(True, False), (False, True)],
)
def test_full_finetune_trains_everything_but_a_frozen_tower(tiny_dir, freeze_vision, vision_trainable):
    policy = load_policy(tiny_dir, full_finetune=True, freeze_vision=freeze_vision)
    model = policy.model
    assert all(p.requires_grad == vision_trainable for _, p in params_under(model, "visual"))
    assert all(p.requires_grad for _, p in params_under(model, "language_model"))
    assert model.lm_head.weight.requires_grad
    parts = policy.info.parameters["parts"]
    assert parts["vision"]["trainable"] == (parts["vision"]["total"] if vision_trainable else 0)
    assert policy.info.mode == "full"


def test_gradient_checkpointing_and_dtype_are_applied(tiny_dir):
    policy = load_policy(tiny_dir, full_finetune=True, gradient_checkpointing=True, dtype="bf16")
    assert policy.model.is_activation_checkpointing
    assert policy.info.dtype == "bfloat16"
    assert next(policy.model.parameters()).dtype == torch.bfloat16


def test_pixel_budget_override_reaches_the_image_processor(tiny_dir):
    policy = load_policy(tiny_dir, min_pixels=28 * 28, max_pixels=56 * 56)
    processor = policy.processor
    text = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}]}])
    picture = Image.fromarray(np.zeros((112, 112, 3), dtype=np.uint8))
    inputs = processor(text=[text], images=[[picture]], return_tensors="pt")
    # 112x112 shrinks to the 56x56 budget: 4x4 patches -> 2x2 = 4 image tokens instead of 16
    assert int((inputs["input_ids"] == processor.image_token_id).sum()) == 4


@pytest.mark.parametrize(
    ("dtype", "cuda", "expected"),
    [
        ("auto", False, torch.float32),  # CPUs: full precision
        ("auto", True, torch.bfloat16),  # CUDA: the paper's bf16
        ("fp16", False, torch.float16),
        (torch.float64, False, torch.float64),  # a torch dtype passes through
    ],
)
def test_dtype_resolution(monkeypatch, dtype, cuda, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert resolve_dtype(dtype) == expected


# --- errors that tell the user what to do ------------------------------------------------------------


def test_missing_local_folder_names_the_resolved_path(tmp_path):
    missing = tmp_path / "no" / "model"
    with pytest.raises(RepicError) as error:
        load_policy(missing)
    assert str(missing.resolve()) in str(error.value)


def test_missing_hub_model_offline_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    with pytest.raises(RepicError) as error:
        load_policy("some-org/some-model")
    message = str(error.value)
    assert str(tmp_path / "some-org" / "some-model") in message  # the local path it tried
    assert str(tmp_path / "hub-cache") in message  # the hub cache it tried
    assert "--model /path/to/" in message and "offline" in message


def test_a_truncated_checkpoint_is_named_by_loading_and_by_models_info(truncated_base, run_cli):
    weights = truncated_base / "model.safetensors"
    with pytest.raises(RepicError, match=f"{weights} is truncated or damaged .*: re-download or re-save"):
        load_policy(truncated_base)
    result = run_cli("models", "info", truncated_base)  # reads no weights, and used to describe it, exit 0
    assert result.exit_code == 2 and result.stdout == ""
    said = " ".join(result.stderr.split())
    assert f"{weights} is truncated or damaged" in said and "re-download or re-save the checkpoint" in said
    assert "Traceback" not in result.stderr


def test_a_sharded_checkpoint_missing_a_shard_is_refused(tmp_path):
    from repic.models.weight_files import check_weight_files

    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(RepicError, match="lacks 2 weight shard.s. .* the checkpoint is incomplete"):
        check_weight_files(tmp_path)


@pytest.mark.parametrize(
    ("files", "model", "expected"),
    [
        (["model.txt"], "model.txt", "is a file"),  # a file where a folder belongs
        ([], ".", "has no config.json"),  # an empty folder
        (["adapter_config.json"], ".", "LoRA adapter"),  # a PEFT adapter, not a full model
    ],
)
def test_folders_that_are_not_models_are_explained(tmp_path, files, model, expected):
    for name in files:
        (tmp_path / name).write_text("{}")
    with pytest.raises(RepicError, match=expected):
        load_policy(tmp_path / model)


def test_text_only_models_are_refused(tmp_path):
    LlamaConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    ).save_pretrained(tmp_path)
    with pytest.raises(RepicError, match="'llama' model.*image-text-to-text"):
        load_policy(tmp_path)


def test_broken_config_is_explained(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no_such_model"}))
    with pytest.raises(RepicError, match="cannot read the config"):
        load_policy(tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"lora": LoraSettings(), "full_finetune": True}, "either LoRA or full fine-tuning"),
        ({"dtype": "int8"}, "unknown dtype"),
        ({"attn_implementation": "fast"}, "unknown attention implementation"),
        ({"min_pixels": 5000, "max_pixels": 1000}, "larger than max_pixels"),
    ],
)
def test_contradictory_options_are_refused(tiny_dir, kwargs, expected):
    with pytest.raises(RepicError, match=expected):
        load_policy(tiny_dir, **kwargs)


@pytest.mark.skipif(importlib.util.find_spec("flash_attn") is not None, reason="flash-attn is installed here")
def test_flash_attention_without_the_package_says_how_to_install(tiny_dir):
    with pytest.raises(RepicError, match="pip install flash-attn"):
        load_policy(tiny_dir, attn_implementation="flash_attention_2")


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"r": 0}, "must be positive"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"target_modules": "all-linear"}, "not understood"),
        ({"target_modules": []}, "non-empty list"),
    ],
)
def test_lora_settings_are_validated(settings, expected):
    with pytest.raises(RepicError, match=expected):
        LoraSettings(**settings)
