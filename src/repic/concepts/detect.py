"""Optional object crops for retrieval, from an open-vocabulary detector (OWLv2 / OWL-ViT, Grounding DINO).

RAP and RePIC crop the query image with an open-vocabulary detector prompted with the database's
categories and retrieve a concept per crop, so that a photo of several objects finds each of them
rather than whatever dominates the whole frame. ``ObjectDetector`` does this through transformers'
``AutoModelForZeroShotObjectDetection`` and ``AutoProcessor``; which family a checkpoint belongs to is
read from its config (``model_type``), because the two differ in how they are prompted and how their
boxes map back to the image:

- **OWLv2 / OWL-ViT**: one text query per category, ``"a photo of a <category>"`` (the phrasing OWL
  was trained with); OWLv2 pads the image to a square before resizing, so its boxes are scaled to the
  padded square and then clipped to the image.
- **Grounding DINO** (and MM Grounding DINO): one lower-case prompt ``"cat. dog. robot."``; boxes are
  relative to the image itself.

Detections below ``threshold`` are dropped, overlapping ones of any label are suppressed (IoU above
``overlap``, the higher score kept), boxes smaller than ``min_side`` pixels are dropped, and at most
``max_crops`` remain, best first. The detector is off unless one is configured: retrieval then uses the
whole query (and grid crops, see ``repic.concepts.retrieve``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..errors import RepicError
from ..prompts import grounding_dino_prompt, owl_text_queries
from ..records import Box

OWL_TYPES = ("owlv2", "owlvit")
GROUNDING_TYPES = ("grounding-dino", "mm-grounding-dino")
OFFICIAL_DETECTORS = ("google/owlv2-base-patch16-ensemble", "IDEA-Research/grounding-dino-tiny")


@dataclass(frozen=True)
class Detection:
    """One detected object: its box in the image's pixels, the category it answered, its score."""

    box: Box
    label: str
    score: float


class ObjectDetector:
    """An open-vocabulary detector prompted with category names (see the module docstring)."""

    def __init__(
        self,
        source: str | os.PathLike,
        *,
        threshold: float = 0.1,
        overlap: float = 0.5,
        max_crops: int = 6,
        min_side: int = 8,
        device: str = "cpu",
    ) -> None:
        import torch
        from transformers import AutoConfig, AutoModelForZeroShotObjectDetection, AutoProcessor

        if not 0.0 <= threshold < 1.0 or not 0.0 < overlap <= 1.0 or max_crops < 1:
            raise RepicError(
                f"detector settings out of range (threshold {threshold}, overlap {overlap}, max_crops "
                f"{max_crops}): use 0 <= threshold < 1, 0 < overlap <= 1, max_crops >= 1"
            )
        self.source = str(source)
        self.threshold, self.overlap, self.max_crops, self.min_side = threshold, overlap, max_crops, min_side
        self.device = torch.device(device)
        local = Path(self.source).expanduser()
        where = str(local) if local.exists() else self.source
        hub_kwargs = {"local_files_only": True} if local.exists() else {}
        try:
            config = AutoConfig.from_pretrained(where, **hub_kwargs)
            self.processor = AutoProcessor.from_pretrained(where, **hub_kwargs)
            self.model = AutoModelForZeroShotObjectDetection.from_pretrained(where, **hub_kwargs)
        except (OSError, ValueError) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RepicError(
                f"cannot load the detector {self.source!r} ({first_line}); pass a local OWLv2 or Grounding "
                f"DINO folder or a reachable hub id (e.g. {' or '.join(OFFICIAL_DETECTORS)}), or leave the "
                "detector out"
            ) from None
        self.model_type = config.model_type
        if self.model_type not in OWL_TYPES + GROUNDING_TYPES:
            raise RepicError(
                f"{self.source} is a {self.model_type!r} model; crops need an OWLv2 / OWL-ViT or Grounding "
                "DINO checkpoint"
            )
        self.model.to(self.device).eval()
        # OWL's text tower reads a fixed number of tokens (16): every query is padded or cut to it, so a long
        # category name cannot stop the run.
        text_length = getattr(getattr(config, "text_config", None), "max_position_embeddings", None)
        self._text_options = (
            {"padding": "max_length", "truncation": True, "max_length": text_length}
            if self.model_type in OWL_TYPES and text_length
            else {}
        )

    def detect(self, image: Image.Image, labels: Sequence[str]) -> list[Detection]:
        """Objects of the ``labels`` categories in ``image``, best first (see the module docstring)."""
        import torch

        labels = [label.strip() for label in dict.fromkeys(labels) if label.strip()]
        if not labels:
            return []
        image = image.convert("RGB")
        width, height = image.size
        if self.model_type in OWL_TYPES:
            text = [owl_text_queries(labels)]
            side = max(width, height) if self.model_type == "owlv2" else None
            target = [(side, side)] if side else [(height, width)]
        else:
            text = grounding_dino_prompt(labels)
            target = [(height, width)]
        inputs = self.processor(images=image, text=text, return_tensors="pt", **self._text_options)
        inputs = inputs.to(self.device)
        with torch.inference_mode():
            outputs = self.model(**inputs)
        if self.model_type in OWL_TYPES:
            result = self.processor.post_process_grounded_object_detection(
                outputs, threshold=self.threshold, target_sizes=target, text_labels=[labels]
            )[0]
            names = result["text_labels"]
        else:
            result = self.processor.post_process_grounded_object_detection(
                outputs, inputs["input_ids"], threshold=self.threshold, text_threshold=self.threshold,
                target_sizes=target,
            )[0]
            # "labels" (strings in older releases) warns when read where "text_labels" exists
            names = result["text_labels"] if "text_labels" in result else result["labels"]
        found = []
        for box, score, name in zip(result["boxes"].tolist(), result["scores"].tolist(), names, strict=True):
            x1, y1, x2, y2 = max(0.0, box[0]), max(0.0, box[1]), min(float(width), box[2]), min(float(height), box[3])
            if x2 - x1 >= self.min_side and y2 - y1 >= self.min_side:
                found.append(Detection((x1, y1, x2, y2), str(name), float(score)))
        return suppress_overlaps(found, self.overlap)[: self.max_crops]

    def crops(self, image: Image.Image, labels: Sequence[str]) -> list[Image.Image]:
        """The detected objects cut out of ``image``, best first."""
        return [image.crop(tuple(round(v) for v in found.box)) for found in self.detect(image, labels)]


def standard_box_iou(a: Box, b: Box) -> float:
    """The standard intersection over union of two ``(x1, y1, x2, y2)`` boxes: shared area over joint area.

    Edges are continuous coordinates, so boxes that only touch share no area. 0 when the union is empty.
    (The RePIC reward uses the official code's arithmetic instead: ``repic.rewards.official_box_iou``.)

    >>> standard_box_iou((0, 0, 10, 10), (5, 0, 15, 10))  # overlap 50, union 150
    0.3333333333333333
    """
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def suppress_overlaps(detections: Sequence[Detection], overlap: float) -> list[Detection]:
    """Greedy non-maximum suppression over all labels: best first, dropping boxes with IoU > ``overlap``."""
    kept: list[Detection] = []
    for found in sorted(detections, key=lambda d: d.score, reverse=True):
        if all(standard_box_iou(found.box, other.box) <= overlap for other in kept):
            kept.append(found)
    return kept
