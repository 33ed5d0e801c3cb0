"""The frozen tower's feature cache (``repic.models.vision_cache``): the same outputs as without it, each
image encoded once, exact on lookalike fingerprints, out of the way of a trainable tower, bounded, and only
on the families whose images are flattened patches."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from repic.models.vision_cache import VisionFeatureCache, cache_vision_features
from repic.shipped import shipped_base_path
from tiny_families import build_family


def _image(seed: int, side: int) -> Image.Image:
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (side, side, 3), generator=generator, dtype=torch.uint8)
    return Image.fromarray(pixels.numpy())


def _load(folder):
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(folder).eval()
    model.requires_grad_(False)
    return model, AutoProcessor.from_pretrained(folder)


def _batch(processor, images_per_prompt: list[list[Image.Image]]):
    messages = [
        [{"role": "user", "content": [*({"type": "image"} for _ in images), {"type": "text", "text": "What is it?"}]}]
        for images in images_per_prompt
    ]
    texts = [processor.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in messages]
    processor.tokenizer.padding_side = "left"
    return processor(text=texts, images=images_per_prompt, return_tensors="pt", padding=True)


@pytest.fixture(scope="module")
def tiny():
    return _load(shipped_base_path())


def _grpo_like_batch(processor):
    # 3 prompts (a reference and a query each), every prompt repeated 4 times as a GRPO step repeats it
    prompts = [[_image(i, 56), _image(10 + i, 112)] for i in range(3)]
    return _batch(processor, [prompt for prompt in prompts for _ in range(4)])


def test_logits_are_the_same_and_each_distinct_image_is_encoded_once(tiny):
    model, processor = tiny
    batch = _grpo_like_batch(processor)
    with torch.no_grad():
        plain = model(**batch).logits
        cache = cache_vision_features(model)
        try:
            first = model(**batch).logits
            assert (cache.misses, cache.hits) == (6, 18)  # 6 distinct images among the 24 shown
            second = model(**batch).logits
            assert (cache.misses, cache.hits) == (6, 42)  # the second pass encodes nothing
        finally:
            del cache.core.get_image_features
    assert torch.equal(plain, first) and torch.equal(plain, second)


def test_greedy_generation_is_unchanged(tiny):
    model, processor = tiny
    batch = _grpo_like_batch(processor)
    plain = model.generate(**batch, max_new_tokens=12, do_sample=False)
    cache = cache_vision_features(model)
    try:
        cached = model.generate(**batch, max_new_tokens=12, do_sample=False)
    finally:
        del cache.core.get_image_features
    assert torch.equal(plain, cached)


def test_images_with_the_same_fingerprint_are_told_apart_by_their_pixels(tiny):
    model, processor = tiny
    batch = _batch(processor, [[_image(0, 112)]])
    pixels = batch["pixel_values"]
    twin = pixels.clone()
    # swap two values of one column between two patch rows: both sums of the fingerprint stay the same
    twin[0, 5], twin[1, 5] = pixels[1, 5].item(), pixels[0, 5].item()
    assert not torch.equal(twin, pixels)
    core = cache_vision_features(model).core
    try:
        cache: VisionFeatureCache = core.get_image_features
        grid = batch["image_grid_thw"]
        with torch.no_grad():
            original = cache(pixels, grid, return_dict=True).pooler_output[0]
            from_twin = cache(twin, grid, return_dict=True).pooler_output[0]
            assert cache._fingerprints(pixels, [pixels.shape[0]], [tuple(grid[0].tolist())]) == cache._fingerprints(
                twin, [twin.shape[0]], [tuple(grid[0].tolist())]
            )
            expected = cache.original(twin, grid, return_dict=True).pooler_output[0]
    finally:
        del core.get_image_features
    assert cache.misses == 2 and cache.hits == 0
    assert torch.equal(from_twin, expected) and not torch.equal(from_twin, original)


def test_a_trainable_tower_is_never_served_from_the_cache(tiny):
    model, processor = tiny
    batch = _grpo_like_batch(processor)
    cache = cache_vision_features(model)
    try:
        cache.core.visual.requires_grad_(True)
        with torch.no_grad():
            model(**batch)
            model(**batch)
    finally:
        cache.core.visual.requires_grad_(False)
        del cache.core.get_image_features
    assert cache.hits == cache.misses == 0 and cache.size == 0


def test_the_cache_keeps_at_most_its_capacity(tiny):
    model, processor = tiny
    cache = cache_vision_features(model, capacity=2)
    try:
        with torch.no_grad():
            for seed in range(3):
                model(**_batch(processor, [[_image(seed, 112)]]))
            assert cache.size == 2 and cache.misses == 3
            model(**_batch(processor, [[_image(0, 112)]]))  # the oldest went first: encoded again
            assert cache.misses == 4
            model(**_batch(processor, [[_image(2, 112)]]))  # the newest stayed
            assert cache.misses == 4 and cache.hits == 1
    finally:
        del cache.core.get_image_features


def test_installing_twice_returns_the_same_cache_and_zero_turns_it_off(tiny):
    model, _ = tiny
    assert cache_vision_features(model, capacity=0) is None
    cache = cache_vision_features(model)
    try:
        assert cache_vision_features(model) is cache
        assert "get_image_features" not in model.state_dict()  # weights and saving are untouched
    finally:
        del cache.core.get_image_features


def test_qwen3_vl_deepstack_features_come_back_the_same(tmp_path):
    model, processor = _load(build_family("qwen3_vl", tmp_path / "qwen3"))
    prompts = [[_image(1, 64)], [_image(2, 64)]]
    batch = _batch(processor, [prompt for prompt in prompts for _ in range(3)])
    with torch.no_grad():
        plain = model(**batch).logits
        cache = cache_vision_features(model)
        cached = model(**batch).logits
        again = model(**batch).logits
    assert cache.misses == 2 and cache.hits == 4 + 6
    assert torch.equal(plain, cached) and torch.equal(plain, again)


@pytest.mark.parametrize("family", ["llava", "idefics3"])
def test_families_with_whole_image_batches_are_left_alone(family, tmp_path):
    model, _ = _load(build_family(family, tmp_path / family))
    assert cache_vision_features(model) is None
