"""Reuse a frozen vision tower's features for images it has already encoded: ``cache_vision_features(model)``.

Why: a GRPO step repeats each prompt ``num_generations`` times (8 in the paper's recipe), and the same
images then go through the tower in three passes (the rollout's prefill, the reference model's
log-probabilities, the loss), so a frozen tower encodes each image 24 times per step. Retrieval-augmented
captioning shows the same reference images with many queries. The features of a frozen tower depend only on
the pixels, so each image is encoded once and its features are looked up after that.

How: the wrapper replaces the ``get_image_features`` method of the model's multimodal core (the module that
holds ``visual``: Qwen2-VL, Qwen2.5-VL and Qwen3-VL, whose processors flatten every image into rows of
patches described by ``image_grid_thw``). Per call it splits the patch rows by image, finds each image by a
cheap fingerprint (its grid and two sums of its pixels) and confirms a hit with an exact comparison of the
pixels, so a lookup never returns another image's features. The images not found are encoded in one call
of the original method, as before. Results are the very tensors the tower gave for that image (Qwen's
attention is per image, so an image's features do not depend on the other images of the batch).

When it steps aside (the original method runs, nothing is stored): any vision parameter trainable, a vision
dropout active in training mode, a caller asking for tuple outputs. A tower whose weights are changed in
place after the cache is installed (loading other weights into it) needs ``cache.clear()``. Families
with another image layout (LLaVA, Idefics3, Gemma 3: a batch of whole images) are not wrapped.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

# Images kept. A GRPO step of the paper's recipe shows 8 prompts' images (up to 40); each entry holds the
# image's pixels and features, about 6.6 MB at 448 x 448 px for a 7B Qwen2.5-VL, so 64 cost ~0.4 GB at most.
DEFAULT_CAPACITY = 64


@dataclass
class _Entry:
    pixels: torch.Tensor  # the image's patch rows, compared exactly on every hit
    features: torch.Tensor  # its merged tokens for the language model (``pooler_output``)
    deepstack: tuple[torch.Tensor, ...]  # Qwen3-VL's per-level deepstack features, () elsewhere


class VisionFeatureCache:
    """The features of the last ``capacity`` images a frozen tower encoded, and the wrapper that uses them."""

    def __init__(self, core: nn.Module, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1 (got {capacity}); pass 0 to cache_vision_features to turn it off")
        self.core = core
        self.capacity = capacity
        self.original = core.get_image_features
        self.entries: OrderedDict[tuple, list[_Entry]] = OrderedDict()
        self.size = 0
        self.hits = 0
        self.misses = 0
        self._output_type: type = dict  # the model's output class, learnt from its first call
        visual = core.visual
        self._parameters = list(visual.parameters())
        self._dropouts = [m for m in visual.modules() if isinstance(m, nn.Dropout) and m.p > 0]

    def usable(self, kwargs: dict[str, Any]) -> bool:
        """Whether features may be reused now: a frozen tower, deterministic, asked for a model output."""
        if kwargs.get("return_dict") is False:
            return False
        if any(p.requires_grad for p in self._parameters):  # a tower in training changes with every step
            return False
        return not (self.core.visual.training and self._dropouts)

    def clear(self) -> None:
        self.entries.clear()
        self.size = 0

    def __call__(self, pixel_values: torch.Tensor, image_grid_thw: torch.Tensor | None = None, **kwargs: Any):
        if image_grid_thw is None or not self.usable(kwargs):
            return self.original(pixel_values, image_grid_thw, **kwargs)
        grids = [tuple(row) for row in image_grid_thw.tolist()]
        rows = [t * h * w for t, h, w in grids]
        if sum(rows) != pixel_values.shape[0]:  # not the layout this cache knows: leave it to the model
            return self.original(pixel_values, image_grid_thw, **kwargs)
        images = torch.split(pixel_values, rows)
        keys = self._fingerprints(pixel_values, rows, grids)
        found: list[_Entry | None] = [self._lookup(key, image) for key, image in zip(keys, images, strict=True)]
        missing: dict[int, list[int]] = {}  # first index of each distinct missing image -> all its indices
        for index, entry in enumerate(found):
            if entry is None:
                twin = next((first for first in missing if keys[first] == keys[index]
                             and torch.equal(images[first], images[index])), None)
                missing.setdefault(index if twin is None else twin, []).append(index)
        self.hits += len(found) - len(missing)  # images served without being encoded
        self.misses += len(missing)  # images encoded
        output = None
        if missing:
            firsts = list(missing)
            output = self.original(
                torch.cat([images[i] for i in firsts]), image_grid_thw[firsts], **{**kwargs, "return_dict": True}
            )
            deepstack = getattr(output, "deepstack_features", None) or []
            for position, first in enumerate(firsts):
                entry = _Entry(
                    images[first].detach(),
                    output.pooler_output[position].detach(),
                    tuple(level[position].detach() for level in deepstack),
                )
                self._store(keys[first], entry)
                for index in missing[first]:
                    found[index] = entry
        return self._assemble(output, found)

    def _fingerprints(self, pixel_values: torch.Tensor, rows: list[int], grids: list[tuple]) -> list[tuple]:
        # Two sums per image in one pass over the batch and one transfer: equal images always get equal
        # keys; unequal images rarely do, and an exact comparison settles every hit anyway.
        values = pixel_values.detach().float()
        weights = torch.linspace(1.0, 2.0, values.shape[-1], device=values.device)
        per_row = torch.stack([values.sum(-1), values @ weights], dim=-1)
        per_image = torch.stack([part.sum(0) for part in torch.split(per_row, rows)]).tolist()
        return [(grid, str(pixel_values.dtype), *sums) for grid, sums in zip(grids, per_image, strict=True)]

    def _lookup(self, key: tuple, image: torch.Tensor) -> _Entry | None:
        for entry in self.entries.get(key, ()):
            if entry.pixels.device == image.device and torch.equal(entry.pixels, image):
                self.entries.move_to_end(key)
                return entry
        return None

    def _store(self, key: tuple, entry: _Entry) -> None:
        self.entries.setdefault(key, []).append(entry)
        self.entries.move_to_end(key)
        self.size += 1
        while self.size > self.capacity:
            _, dropped = self.entries.popitem(last=False)
            self.size -= len(dropped)

    def _assemble(self, output: Any, found: list[_Entry]) -> Any:
        # A fresh output of the model's own type, holding what the models read: the merged tokens per image
        # (and Qwen3-VL's deepstack levels); the per-patch states of the encoded subset are not kept.
        if output is not None:
            self._output_type = type(output)
        fields: dict[str, Any] = {"pooler_output": tuple(entry.features for entry in found)}
        if found[0].deepstack:
            levels = range(len(found[0].deepstack))
            fields["deepstack_features"] = [tuple(entry.deepstack[level] for entry in found) for level in levels]
        return self._output_type(**fields)


def vision_core(model: nn.Module) -> nn.Module | None:
    """The module whose ``get_image_features`` encodes flattened-patch images (Qwen's layout), if any."""
    for module in model.modules():
        if "visual" in module._modules and hasattr(module, "get_image_features"):
            if hasattr(module.visual, "spatial_merge_size"):  # flattened patches + image_grid_thw
                return module
    return None


def cache_vision_features(model: nn.Module, capacity: int = DEFAULT_CAPACITY) -> VisionFeatureCache | None:
    """Wrap ``model``'s image encoder with a ``VisionFeatureCache``; None when ``capacity`` is 0 or the family's
    images are not flattened patches. Calling it again returns the cache already installed."""
    if capacity <= 0:
        return None
    core = vision_core(model)
    if core is None:
        return None
    installed = core.__dict__.get("get_image_features")
    if isinstance(installed, VisionFeatureCache):
        return installed
    cache = VisionFeatureCache(core, capacity)
    core.get_image_features = cache  # an instance attribute: the class method stays, state_dict is untouched
    return cache
