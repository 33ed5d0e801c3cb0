"""Guard rails that fail before any compute: placeholders, images, lengths, loggers and backends.

The processor is the shipped tiny base's (Qwen2.5-VL's processor with 28-px merged patches): a 56x56
image is (56/28)^2 = 4 image tokens, a 112x112 one 16.
"""

from __future__ import annotations

import importlib.util

import pytest
from PIL import Image
from transformers import AutoProcessor

from repic.errors import RepicError
from repic.records import Sample
from repic.shipped import shipped_base_path
from repic.train import guards as guards_module
from repic.train.config import RolloutSection
from repic.train.dataset import grpo_rows, sft_rows
from repic.train.guards import (
    batch_layout,
    check_lengths,
    check_reporters,
    check_rollout,
    check_rows,
    prompt_lengths,
)


@pytest.fixture(scope="module")
def processor():
    return AutoProcessor.from_pretrained(shipped_base_path())


@pytest.fixture
def images(tmp_path):
    small, large = tmp_path / "ref.png", tmp_path / "query.png"
    Image.new("RGB", (56, 56), "red").save(small)
    Image.new("RGB", (112, 112), "blue").save(large)
    return str(small), str(large)


def oct_sample(images, problem="<bo> is shown in the first image; the last image is the query image. Is <bo> there?"):
    return Sample("oct", list(images), problem, "yes")


def test_matching_rows_pass_and_one_image_fewer_is_caught(processor, images):
    rows = grpo_rows([oct_sample(images)])
    rendered = processor.apply_chat_template(rows[0]["prompt"], add_generation_prompt=True, tokenize=False)
    assert rendered.count(processor.image_token) == len(rows[0]["images"]) == 2  # one placeholder per image
    assert check_rows(rows, processor, source="train.jsonl") is None
    rows[0]["images"] = rows[0]["images"][:1]  # the prompt still shows two
    with pytest.raises(RepicError, match=r"sample 1 of train.jsonl: 1 image\(s\) but 2 image placeholder\(s\)"):
        check_rows(rows, processor, source="train.jsonl")


def test_an_image_token_inside_the_problem_text_is_caught(processor, images):
    rows = grpo_rows([oct_sample(images), oct_sample(images, "<|image_pad|> Is <bo> in the query image?")])
    with pytest.raises(RepicError) as error:
        check_rows(rows, processor, source="train.jsonl")
    message = str(error.value)
    assert "1 sample(s) of train.jsonl" in message
    assert "sample 2 of train.jsonl: 2 image(s) but 3 image placeholder(s)" in message
    assert "contains '<|image_pad|>': remove it" in message


def test_rows_without_images_are_listed(processor, images):
    rows = grpo_rows([oct_sample(images)])
    rows[0]["images"] = []
    with pytest.raises(RepicError, match="sample 1 of train.jsonl: no image"):
        check_rows(rows, processor, source="train.jsonl")


def test_prompt_length_counts_each_image_token(processor, images):
    rows = grpo_rows([oct_sample(images)])
    (length,) = prompt_lengths(rows, processor)
    assert length.image_tokens == 4 + 16  # 56x56 -> 2x2 merged patches, 112x112 -> 4x4
    text = processor.apply_chat_template(rows[0]["prompt"], add_generation_prompt=True, tokenize=False)
    pixels = [Image.open(path).convert("RGB") for path in images]
    assert length.total == len(processor(text=[text], images=pixels)["input_ids"][0])  # the real expansion


def test_a_prompt_over_the_limit_is_refused_with_the_image_tokens_a_cut_would_lose(processor, images):
    rows = grpo_rows([oct_sample(images)])
    (length,) = prompt_lengths(rows, processor)
    limit = length.total - 10
    # a left cut of 10 tokens starting before the first image token loses 10 - first_image_token of them
    lost = min(length.image_tokens, max(0, 10 - length.first_image_token))
    with pytest.raises(RepicError) as error:
        check_lengths(rows, processor, source="train.jsonl", max_prompt_length=limit)
    message = str(error.value)
    assert f"longer than max_prompt_length={limit}" in message
    assert f"sample 1: {length.total} tokens (20 of them image tokens)" in message
    assert f"would remove {lost} image token(s)" in message
    assert f"raise grpo.max_prompt_length to at least {length.total}" in message


def test_prompt_plus_completion_must_fit_the_model(processor, images):
    rows = grpo_rows([oct_sample(images)])
    (length,) = prompt_lengths(rows, processor)
    check_lengths(rows, processor, source="t", max_prompt_length=None, max_completion_length=8,
                  max_positions=length.total + 8)  # exactly fits
    with pytest.raises(RepicError, match=f"prompt . answer = {length.total + 9} tokens > {length.total + 8}"):
        check_lengths(rows, processor, source="t", max_prompt_length=None, max_completion_length=9,
                      max_positions=length.total + 8)


def test_sft_rows_count_their_answer(processor, images):
    sample = Sample("ict", list(images), "Name: <bo>, Info: a dog\nCaption it.", "<bo>", {"caption": "<bo> naps."})
    rows = sft_rows([sample])
    (length,) = prompt_lengths(rows, processor)
    answer = len(processor.tokenizer("<bo> naps.", add_special_tokens=False)["input_ids"]) + 2  # + end of turn
    with pytest.raises(RepicError, match="sft.max_length"):
        check_lengths(rows, processor, source="t", max_prompt_length=None, max_total_length=length.total + answer - 1)
    check_lengths(rows, processor, source="t", max_prompt_length=None, max_total_length=length.total + answer)


def test_missing_loggers_are_named_with_the_install_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RepicError, match="asks for tensorboard, which is not installed: `pip install tensorboard`"):
        check_reporters(["tensorboard"])
    check_reporters([])


def test_vllm_needs_the_package_and_a_gpu(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RepicError, match="backend is vllm, which is not installed"):
        check_rollout(RolloutSection(backend="vllm"), on_gpu=True)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    with pytest.raises(RepicError, match="vllm needs a GPU"):
        check_rollout(RolloutSection(backend="vllm"), on_gpu=False)
    check_rollout(RolloutSection(), on_gpu=False)


def test_doctests():
    import doctest

    assert doctest.testmod(guards_module).failed == 0


# ------------------------------------------------------------------------------------------ batch layout
@pytest.mark.parametrize(
    ("per_step", "micro", "world", "expected"),
    [
        (32, None, 1, (32, 1)),  # one process takes the whole step in one pass
        (32, None, 2, (16, 1)),  # two processes take half each
        (128, 8, 8, (8, 2)),  # the paper: 8 GPUs x 8 completions x 2 accumulation steps
        (128, 8, 1, (8, 16)),  # the same step on one GPU: 16 accumulation steps
    ],
)
def test_batch_layout_keeps_the_global_step(per_step, micro, world, expected):
    layout = batch_layout(per_step, micro, world, what="grpo")
    assert (layout.per_device_batch, layout.accumulation) == expected
    assert layout.per_device_batch * layout.accumulation * world == per_step


@pytest.mark.parametrize(
    ("per_step", "micro", "world", "message"),
    [
        (24, None, 5, "= 24 cannot be split evenly over 5 processes"),
        (32, 6, 2, "each of the 2 process.es. takes 16 of the 32 items of a step, which grpo.completions_per_device"),
    ],
)
def test_batch_layout_refuses_uneven_splits(per_step, micro, world, message):
    with pytest.raises(RepicError, match=message):
        batch_layout(per_step, micro, world, what="grpo")
