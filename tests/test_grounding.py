"""The grounding targets and loss of the tiny base's pretraining (``repic.world.grounding``)."""

from __future__ import annotations

import math

import torch
from torch import nn

from repic.records import Scene, SceneObject
from repic.world.grounding import GROUNDING_COLUMN, GroundingCollator, grounding_loss
from repic.world.pretrain_data import grounding_targets


def _scene(*boxes):
    return Scene("s.png", 112, 112, [SceneObject("cat", box, None) for box in boxes], "train", {})


def test_targets_mark_the_cells_an_object_covers_a_quarter_of():
    # A box over cells (row 0, col 0) fully and (row 0, col 1) by 14 x 28 = half a cell: both marked;
    # (row 1, col 0) by 28 x 5 = 18 % of a cell: not marked.
    targets = grounding_targets(_scene((0, 0, 42, 33)), [0])
    assert len(targets) == 16
    assert [i for i, t in enumerate(targets) if t] == [0, 1]
    assert grounding_targets(_scene((0, 0, 42, 33)), []) == [0.0] * 16  # an absent object: nothing marked


def test_targets_of_several_objects_are_joined():
    targets = grounding_targets(_scene((0, 0, 28, 28), (84, 84, 112, 112)), [0, 1])
    assert [i for i, t in enumerate(targets) if t] == [0, 15]


def test_collator_carries_targets_and_pads_rows_without_them():
    seen = []

    def inner(examples):
        seen.append([sorted(e) for e in examples])
        return {"input_ids": torch.zeros(len(examples), 3, dtype=torch.long)}

    batch = GroundingCollator(inner)([{"prompt": 1, GROUNDING_COLUMN: [1.0, 0.0]}, {"prompt": 2, GROUNDING_COLUMN: []}])
    assert seen == [[["prompt"], ["prompt"]]]  # TRL's collator never sees the column
    assert batch[GROUNDING_COLUMN][0].tolist() == [1.0, 0.0]
    assert all(math.isnan(v) for v in batch[GROUNDING_COLUMN][1].tolist())
    assert GROUNDING_COLUMN not in GroundingCollator(inner)([{"prompt": 1, GROUNDING_COLUMN: []}])


def test_loss_reads_the_last_images_tokens_and_skips_rows_without_targets():
    image = 9
    # Row 0: a 2-token reference image, then a 2-token query; row 1 has no targets.
    input_ids = torch.tensor([[1, image, image, 2, image, image, 3], [1, 2, 3, 4, 5, 6, 7]])
    hidden = torch.zeros(2, 7, 4)
    hidden[0, 4, 0] = 10.0  # the query's first token "says yes", its second "no"
    hidden[0, 5, 0] = -10.0
    probe = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        probe.weight[:] = torch.tensor([[1.0, 0, 0, 0]])
    targets = torch.tensor([[1.0, 0.0], [float("nan"), float("nan")]])
    assert grounding_loss([hidden], input_ids, targets, image, probe) < 1e-3  # right about both query tokens
    wrong = torch.tensor([[0.0, 1.0], [float("nan"), float("nan")]])
    assert grounding_loss([hidden], input_ids, wrong, image, probe) > 5  # the reference tokens are not read
    none = torch.full((2, 2), float("nan"))
    assert grounding_loss([hidden], input_ids, none, image, probe) == 0
