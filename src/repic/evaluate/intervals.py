"""How sure a number is: per-seed summaries, a two-level bootstrap interval, and the rule for a claim.

A model trained once per training seed answers the same held-out queries in every seed. A measure's
uncertainty then has two sources: which seed the training drew, and which queries the evaluation drew.
``summarize_seeds`` reports each seed's value, their mean, std and range, and a percentile interval of the
mean from a two-level bootstrap: each resample draws S seeds with replacement and, for each drawn seed, its
n queries with replacement, computes the measure from the drawn queries' summed counts and averages over
the drawn seeds (with one seed, a plain query bootstrap). ``summarize_gap`` does the same for the gap
between two models, *paired*: both answered the same queries in the same order, so each resample applies
the same seed and query draws to both. ``claim_verdict`` is the one rule for "A > B".

Written here rather than taken from ``scipy.stats.bootstrap`` or ``rliable``: both resample one level of
independent observations (rliable's stratified bootstrap: runs within tasks); neither nests queries within
seeds, and rliable does not pair two models' answers to the same queries. Counts are kept per query, not
per-query scores, because F1 is not a mean over queries: it is computed from the summed counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import RepicError
from .metrics import CORRECT, MISS

RATE, F1 = "rate", "f1"
KINDS: tuple[str, ...] = (RATE, F1)
_COLUMNS = {RATE: 2, F1: 3}
HOLDS, WITHIN_NOISE, DOES_NOT_HOLD = "holds", "within noise", "does not hold"


# eq=False: the counts are an array, which neither compares to one bool nor hashes.
@dataclass(frozen=True, eq=False)
class QueryOutcomes:
    """One model's per-query outcomes on one measure: ``counts`` rows whose column sums give the measure."""

    kind: str  # RATE: columns (hits, total); F1: columns (correct, miss, total) as metrics counts them
    counts: np.ndarray  # [n_queries, 2] or [n_queries, 3], non-negative ints

    def __post_init__(self) -> None:
        if self.kind not in _COLUMNS:
            raise RepicError(f"unknown measure kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        counts = np.asarray(self.counts)
        columns = _COLUMNS[self.kind]
        if counts.ndim != 2 or counts.shape[1] != columns or not np.issubdtype(counts.dtype, np.integer):
            raise RepicError(
                f"a {self.kind} measure needs integer counts of shape [n_queries, {columns}], found "
                f"{counts.dtype} of shape {list(counts.shape)}; build them with rate_outcomes or caption_outcomes"
            )
        if (counts < 0).any():
            raise RepicError("counts must be non-negative; build them with rate_outcomes or caption_outcomes")
        object.__setattr__(self, "counts", counts.astype(np.int64))

    @property
    def queries(self) -> int:
        return len(self.counts)

    def value(self) -> float:
        """The measure on all queries."""
        return float(measure(self.kind, self.counts.sum(axis=0)))


def measure(kind: str, summed: np.ndarray) -> np.ndarray:
    """The measure from summed counts, over any leading axes: ``summed[..., k]`` -> values ``[...]``.

    RATE: hits / total. F1 as ``repic.evaluate.metrics`` computes it: P = correct / (correct + miss),
    R = correct / total, F1 their harmonic mean, each 0 when its denominator is 0.

    >>> measure(RATE, np.array([[3, 4], [0, 0]]))
    array([0.75, 0.  ])
    >>> round(float(measure(F1, np.array([2, 1, 4]))), 6)  # P 2/3, R 1/2: (2/3) / (7/6) = 4/7
    0.571429
    """
    summed = np.asarray(summed, dtype=np.float64)
    if kind == RATE:
        return _ratio(summed[..., 0], summed[..., 1])
    if kind == F1:
        correct, miss, total = summed[..., 0], summed[..., 1], summed[..., 2]
        precision = _ratio(correct, correct + miss)
        recall = _ratio(correct, total)
        return _ratio(2 * precision * recall, precision + recall)
    raise RepicError(f"unknown measure kind {kind!r}; choose one of {', '.join(KINDS)}")


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is not positive."""
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, 0.0)


def caption_outcomes(outcomes_per_row: Sequence[Sequence[str | None]]) -> QueryOutcomes:
    """F1 outcomes, one query per caption row, from ``official_row_outcomes`` or ``strict_row_outcomes``.

    >>> caption_outcomes([["correct", None], ["miss"]]).counts.tolist()  # (correct, miss, total) per row
    [[1, 0, 2], [0, 1, 1]]
    """
    counts = [
        (sum(o == CORRECT for o in row), sum(o == MISS for o in row), len(row)) for row in outcomes_per_row
    ]
    return QueryOutcomes(F1, np.array(counts, dtype=np.int64).reshape(-1, 3))


def rate_outcomes(flags: Sequence[bool]) -> QueryOutcomes:
    """RATE outcomes, one query per flag (a hit or not).

    >>> rate_outcomes([True, False, True]).value()
    0.6666666666666666
    """
    hits = np.array([bool(flag) for flag in flags], dtype=np.int64)
    return QueryOutcomes(RATE, np.stack([hits, np.ones_like(hits)], axis=-1))


@dataclass(frozen=True)
class SeedSummary:
    """One model's measure over its training seeds, and the interval of the mean (seeds and queries)."""

    values: tuple[float, ...]  # the measure in each seed, in seed order
    mean: float
    std: float  # sample std over seeds (ddof=1); 0.0 with one seed
    minimum: float
    maximum: float
    low: float  # the interval of the mean over seeds
    high: float
    level: float = 0.95


@dataclass(frozen=True)
class GapSummary:
    """Mine minus theirs on one measure, seed by seed, its paired interval and what may be claimed."""

    gaps: tuple[float, ...]  # mine - theirs in each seed
    mean: float
    low: float
    high: float
    level: float
    verdict: str  # claim_verdict(gaps, low)


def summarize_seeds(
    per_seed: Sequence[QueryOutcomes], *, resamples: int = 2000, level: float = 0.95, rng_seed: int = 0
) -> SeedSummary:
    """Each seed's value, their mean, std and range, and the two-level bootstrap interval of the mean."""
    _check_settings(resamples, level)
    _check(per_seed, "per_seed")
    values = [outcomes.value() for outcomes in per_seed]
    means = _bootstrap([per_seed], len(per_seed), resamples, rng_seed)[0]
    low, high = _percentiles(means, level)
    return SeedSummary(
        values=tuple(values),
        mean=float(np.mean(values)),
        std=float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
        minimum=min(values),
        maximum=max(values),
        low=low,
        high=high,
        level=level,
    )


def summarize_gap(
    mine: Sequence[QueryOutcomes],
    theirs: Sequence[QueryOutcomes],
    *,
    resamples: int = 2000,
    level: float = 0.95,
    rng_seed: int = 0,
) -> GapSummary:
    """Mine minus theirs, seed by seed, with a paired two-level bootstrap interval of the mean gap.

    Seed s of ``mine`` is paired with seed s of ``theirs``; a list of one entry (a model trained once, like
    the base) is paired with every seed of the other.
    """
    _check_settings(resamples, level)
    _check(mine, "mine")
    _check(theirs, "theirs")
    seeds = max(len(mine), len(theirs))
    if min(len(mine), len(theirs)) != 1 and len(mine) != len(theirs):
        raise RepicError(
            f"cannot pair {len(mine)} seeds with {len(theirs)}: give both models the same seeds, or one "
            "outcome for a model trained once"
        )
    _check_alike(mine[0], theirs[0], "the two models")
    gaps = [
        mine[min(s, len(mine) - 1)].value() - theirs[min(s, len(theirs) - 1)].value() for s in range(seeds)
    ]
    mine_means, their_means = _bootstrap([mine, theirs], seeds, resamples, rng_seed)
    low, high = _percentiles(mine_means - their_means, level)
    return GapSummary(
        gaps=tuple(gaps),
        mean=float(np.mean(gaps)),
        low=low,
        high=high,
        level=level,
        verdict=claim_verdict(gaps, low),
    )


def claim_verdict(gaps: Sequence[float], low: float) -> str:
    """Whether "mine > theirs" holds: HOLDS when the gap is positive in every seed and the interval's low
    end is above 0; WITHIN_NOISE when the mean gap is positive but either fails; else DOES_NOT_HOLD.

    >>> claim_verdict([0.1, 0.2], 0.05), claim_verdict([0.3, -0.1], 0.02), claim_verdict([0.1, -0.1], -0.2)
    ('holds', 'within noise', 'does not hold')
    """
    if not gaps:
        raise RepicError("no gaps to judge; compare at least one seed")
    if sum(gaps) / len(gaps) <= 0:
        return DOES_NOT_HOLD
    return HOLDS if all(gap > 0 for gap in gaps) and low > 0 else WITHIN_NOISE


def _check(per_seed: Sequence[QueryOutcomes], name: str) -> None:
    """One model's seeds: at least one, every one with queries, all of one kind and one query count."""
    if not per_seed:
        raise RepicError(f"{name} has no seeds; give the outcomes of at least one trained model")
    for index, outcomes in enumerate(per_seed):
        if outcomes.queries == 0:
            raise RepicError(f"{name}, seed {index}: no queries were answered; evaluate that model again")
        _check_alike(per_seed[0], outcomes, f"{name}, seeds 0 and {index}")


def _check_alike(first: QueryOutcomes, other: QueryOutcomes, what: str) -> None:
    if first.kind != other.kind:
        raise RepicError(
            f"{what} are measured differently ({first.kind} and {other.kind}); compare one measure at a time"
        )
    if first.queries != other.queries:
        raise RepicError(
            f"{what} answered {first.queries} and {other.queries} queries; every model must answer the same "
            "evaluation queries, so evaluate them again on one build"
        )


def _bootstrap(
    models: Sequence[Sequence[QueryOutcomes]], seeds: int, resamples: int, rng_seed: int
) -> np.ndarray:
    """Per model, each resample's mean measure over drawn seeds, its queries drawn within each seed:
    ``[models, resamples]``. Every model gets the same draws (a model of one seed reads it at every draw)."""
    rng = np.random.default_rng(rng_seed)
    stacks = [np.stack([outcomes.counts for outcomes in model]) for model in models]  # [S_m, n, k] each
    kind, n = models[0][0].kind, stacks[0].shape[1]
    drawn_seeds = rng.integers(0, seeds, size=(resamples, seeds))  # [R, S]
    totals = np.zeros((len(models), resamples))
    for position in range(seeds):
        queries = rng.integers(0, n, size=(resamples, n))  # [R, n]
        for index, stack in enumerate(stacks):
            seed = drawn_seeds[:, position] if len(stack) > 1 else np.zeros(resamples, dtype=np.int64)
            summed = stack[seed[:, None], queries].sum(axis=1)  # [R, n, k] -> [R, k]
            totals[index] += measure(kind, summed)
    return totals / seeds


def _check_settings(resamples: int, level: float) -> None:
    if resamples < 1:
        raise RepicError(f"resamples must be at least 1 (2000 is the default), not {resamples}")
    if not 0 < level < 1:
        raise RepicError(f"level must be between 0 and 1 (0.95 for a 95 % interval), not {level}")


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)
