"""Where a one-seed demo run falls in a shipped multi-seed run of the same settings (repic.world.demo.reference)."""

from __future__ import annotations

import json

import pytest

from repic.errors import RepicError
from repic.evaluate.intervals import SeedSummary
from repic.report import ModelResult, Results
from repic.world.demo.reference import main, reference_of, shipped_range_lines
from repic.world.demo.settings import demo_settings


def results_of(settings, values: dict[str, tuple[float, ...]]) -> Results:
    """Results with one cell (4-concept F1) per model, its values per seed as given."""
    seeds = tuple(range(len(next(iter(values.values())))))

    def summary(numbers: tuple[float, ...]) -> SeedSummary:
        mean = sum(numbers) / len(numbers)
        return SeedSummary(numbers, mean, 0.0, min(numbers), max(numbers), min(numbers), max(numbers))

    labels = ["base", *values]
    return Results(
        models=[ModelResult(label) for label in labels],
        configs={"demo": settings.describe()},
        seeds=seeds,
        per_seed={label: [ModelResult(label)] * len(seeds) for label in values},
        summaries={"base": {"four.official": summary((0.1,))}, **{k: {"four.official": summary(v)} for k, v in values.items()}},
    )


def test_a_one_seed_run_is_placed_in_the_shipped_range_of_the_same_settings(tmp_path):
    settings = demo_settings(out=tmp_path / "a", seeds=(0, 1, 2))
    shipped = tmp_path / "demo-seeds.json"
    shipped.write_text(json.dumps(reference_of(results_of(settings, {"repic": (0.862, 0.687, 0.327)}), "x.json")))
    one = demo_settings(out=tmp_path / "b")  # another folder, one seed: the same process
    lines = shipped_range_lines(results_of(one, {"repic": (0.815,)}), one, shipped)
    assert lines == [
        "Where this seed falls in the shipped run over seeds 0, 1, 2 with the same settings (%):",
        # mean (86.2 + 68.7 + 32.7) / 3 = 62.53
        "  repic     F1, 4 concepts (official): 81.5; shipped 32.7-86.2 (mean 62.5)",
    ]
    other = demo_settings(out=tmp_path / "c", steps=200)  # other settings: nothing to compare with
    assert shipped_range_lines(results_of(other, {"repic": (0.9,)}), other, shipped) == []
    assert shipped_range_lines(results_of(one, {"repic": (0.9,)}), one, tmp_path / "missing.json") == []


def test_the_reference_is_made_from_a_multi_seed_run_only(tmp_path, capsys):
    settings = demo_settings(out=tmp_path)
    with pytest.raises(RepicError, match="holds one training seed"):
        reference_of(results_of(settings, {"repic": (0.9,)}), "one.json")
    path = tmp_path / "results.json"
    path.write_text("{}", encoding="utf-8")
    assert main([str(path)]) == 2 and "is not a repic results file" in capsys.readouterr().err
