"""The family table: every row's names are found on a real model of the family; unknown types get GENERIC."""

from __future__ import annotations

from types import SimpleNamespace

from repic.models import FAMILIES, family_of
from repic.models.families import GENERIC


def test_each_model_type_has_one_row_and_unknown_types_fall_back_to_generic():
    types = [model_type for family in FAMILIES for model_type in family.model_types]
    assert len(types) == len(set(types))
    assert family_of(SimpleNamespace(model_type="qwen2_5_vl")).name == "qwen2_5_vl"
    assert family_of(SimpleNamespace(config=SimpleNamespace(model_type="smolvlm"))).name == "idefics3"
    unknown = family_of(SimpleNamespace(model_type="brand_new_vlm"))
    assert unknown is GENERIC
    assert {"visual", "vision_tower", "vision_model"} <= set(unknown.vision)
    assert {"multi_modal_projector", "connector", "mm_projector"} <= set(unknown.projector)
