"""A report comparing any models from their evaluation folders: what ``repic report`` writes.

``compare_models`` reads each model's ``repic eval model`` folders (``repic.evaluate.models``: one folder
per training seed, or one for a model made once), scores them as ``repic eval`` does, judges the claims
asked for ("A > B" on every measure both have, over their seeds: ``repic.report.claims``) and returns the
``Results`` and gallery rows ``write_report`` turns into the report the demo writes: tables in both scorer
modes, per-seed tables and intervals, plots, the gallery.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..concepts.database import ConceptDatabase
from ..errors import RepicError
from ..evaluate.models import gallery_rows, query_outcomes, read_model_result
from .claims import Outcomes, claims_above, seed_summaries
from .gallery import GalleryRow
from .results import ModelResult, Results


@dataclass(frozen=True)
class Collected:
    """Each model's results and per-query outcomes, one per evaluation folder (per training seed)."""

    results: Mapping[str, Sequence[ModelResult]]
    outcomes: Outcomes


def collect(runs: Mapping[str, Sequence[str | os.PathLike]], database: ConceptDatabase) -> Collected:
    """The results and outcomes of every evaluation folder of ``runs`` (label -> its folders, seed order)."""
    results, outcomes = {}, {}
    for label, folders in runs.items():
        if not folders:
            raise RepicError(f"model {label!r} has no evaluation folder; give one with --model {label}=DIR")
        results[label] = [_labelled(read_model_result(folder), label) for folder in folders]
        outcomes[label] = [query_outcomes(folder, database) for folder in folders]
    return Collected(results, outcomes)


def compare_models(
    runs: Mapping[str, Sequence[str | os.PathLike]],
    database: ConceptDatabase,
    *,
    claims: Sequence[tuple[str, str]] = (),
    seeds: Sequence[int] | None = None,
    title: str = "RePIC comparison",
    gallery_per_evaluation: int = 4,
) -> tuple[Results, list[GalleryRow]]:
    """The ``Results`` and gallery rows of a report over ``runs`` (see the module).

    ``claims`` are (better, other) label pairs; ``seeds`` the training seeds of the folders of a model with
    several (default 0, 1, ...): every such model must have as many folders.
    """
    for better, other in claims:
        for label in (better, other):
            if label not in runs:
                raise RepicError(f"the claim {better} > {other} names {label!r}, which is not a --model; "
                                 f"use one of {', '.join(runs)}")
    counts = {len(folders) for folders in runs.values() if len(folders) > 1}
    if len(counts) > 1:
        raise RepicError("models evaluated over several seeds must have as many folders each "
                         f"({', '.join(f'{label}: {len(f)}' for label, f in runs.items())}); give one per seed")
    count = counts.pop() if counts else 1
    seeds = tuple(range(count)) if seeds is None else tuple(seeds)
    if count > 1 and len(seeds) != count:
        raise RepicError(f"--seeds names {len(seeds)} seeds for {count} folders per model; give one per folder")
    collected = collect(runs, database)
    checks = [check for better, other in claims for check in claims_above(collected.outcomes, better, other)]
    results = Results(
        models=[collected.results[label][0] for label in runs],
        title=title,
        checks=checks,
        seeds=seeds if count > 1 else (),
        per_seed={label: found for label, found in collected.results.items() if len(found) > 1},
        summaries=seed_summaries(collected.outcomes),
    )
    first = {label: folders[0] for label, folders in runs.items()}
    return results, gallery_rows(first, gallery_per_evaluation)


def _labelled(result: ModelResult, label: str) -> ModelResult:
    """``result`` under the label the report gives it (a folder may have been evaluated under another)."""
    from dataclasses import replace

    return result if result.label == label else replace(result, label=label)


def parse_model(spec: str) -> tuple[str, list[Path]]:
    """``LABEL=DIR[,DIR...]`` (a model and its evaluation folders, one per training seed)."""
    label, _, folders = spec.partition("=")
    paths = [Path(folder) for folder in folders.split(",") if folder.strip()]
    if not label.strip() or not paths:
        raise RepicError(f"--model {spec!r} is not LABEL=DIR[,DIR...]; e.g. --model repic=eval/repic-s0,eval/repic-s1")
    return label.strip(), paths


def parse_claim(spec: str) -> tuple[str, str]:
    """``BETTER>OTHER`` (e.g. ``repic>base``)."""
    better, sign, other = spec.partition(">")
    if not sign or not better.strip() or not other.strip():
        raise RepicError(f"--claim {spec!r} is not BETTER>OTHER; e.g. --claim repic>base")
    return better.strip(), other.strip()
