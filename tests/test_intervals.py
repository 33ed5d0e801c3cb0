"""Per-query outcomes, the two-level bootstrap over seeds and queries, and the claim rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from repic.errors import RepicError
from repic.evaluate import (
    DOES_NOT_HOLD,
    F1,
    HOLDS,
    RATE,
    WITHIN_NOISE,
    CaptionRow,
    QueryOutcomes,
    caption_outcomes,
    claim_verdict,
    measure,
    official_row_outcomes,
    official_scores,
    rate_outcomes,
    strict_row_outcomes,
    strict_scores,
    summarize_gap,
    summarize_seeds,
)


def rates(hits: int, n: int) -> QueryOutcomes:
    """``hits`` hits then misses, ``n`` queries."""
    return rate_outcomes([True] * hits + [False] * (n - hits))


# ------------------------------------------------------------------------------------------ measures


def test_measure_rate_and_f1_by_hand():
    # rate: 3 / 4 = 0.75; 0 / 0 -> 0
    assert measure(RATE, np.array([[3, 4], [0, 0]])).tolist() == [0.75, 0.0]
    # F1 of (correct 2, miss 1, total 4): P = 2/3, R = 2/4 = 1/2, F1 = 2 * 1/3 / (2/3 + 1/2) = (2/3) / (7/6) = 4/7
    assert float(measure(F1, np.array([2, 1, 4]))) == pytest.approx(4 / 7)
    # (0, 0, 3): P = 0/0 -> 0, R = 0, F1 -> 0;  (3, 0, 3): P = R = 1, F1 = 1
    assert measure(F1, np.array([[0, 0, 3], [3, 0, 3]])).tolist() == [0.0, 1.0]
    # leading axes are kept: [2, 2, 2] -> [2, 2]
    assert measure(RATE, np.array([[[1, 2], [2, 2]], [[0, 2], [1, 4]]])).tolist() == [[0.5, 1.0], [0.0, 0.25]]


def test_f1_outcomes_give_the_metrics_numbers():
    rows = [
        CaptionRow("a.jpg", ("<bo>", "<kim>"), "<bo> and <kim> play."),  # correct, correct
        CaptionRow("b.jpg", ("<kim>", "<rex>"), "<bo> waves at <rex>."),  # MISS (<bo> named), correct
        CaptionRow("c.jpg", ("<bo>", "<rex>"), "Nobody."),  # none, none
    ]
    # official (two-concept script): correct 3, MISS 1, total 6 -> P 3/4, R 1/2, F1 = (3/4) / (5/4) = 3/5
    per_row = official_row_outcomes(rows)
    assert per_row == [["correct", "correct"], ["miss", "correct"], [None, None]]
    outcomes = caption_outcomes(per_row)
    assert outcomes.counts.tolist() == [[2, 0, 2], [1, 1, 2], [0, 0, 2]]
    assert outcomes.value() == official_scores(rows).f1 == pytest.approx(3 / 5)
    assert caption_outcomes(strict_row_outcomes(rows)).value() == strict_scores(rows).f1
    # the single-concept script scores only each row's first concept, pool {<bo>, <kim>}: <bo> correct;
    # <kim> MISS (<bo> named); <bo> none -> P 1/2, R 1/3, F1 = 2 * 1/6 / (5/6) = 2/5
    single = caption_outcomes(official_row_outcomes(rows, "single"))
    assert single.counts.tolist() == [[1, 0, 1], [0, 1, 1], [0, 0, 1]]
    assert single.value() == official_scores(rows, "single").f1 == pytest.approx(2 / 5)


# ------------------------------------------------------------------------------------------ claim rule


def test_claim_verdict_each_outcome_and_its_edges():
    assert claim_verdict([0.10, 0.05, 0.20], low=0.02) == HOLDS
    # one seed negative, mean (0.3 - 0.1) / 2 = 0.1 > 0, low above 0 anyway: within noise
    assert claim_verdict([0.3, -0.1], low=0.01) == WITHIN_NOISE
    # every seed positive but the interval reaches 0: within noise
    assert claim_verdict([0.1, 0.2], low=0.0) == WITHIN_NOISE
    assert claim_verdict([0.1, 0.2], low=-0.05) == WITHIN_NOISE
    # a seed at exactly 0 is not a gap > 0
    assert claim_verdict([0.0, 0.2], low=0.01) == WITHIN_NOISE
    # mean (0.1 - 0.1) / 2 = 0: does not hold; negative mean: does not hold
    assert claim_verdict([0.1, -0.1], low=-0.2) == DOES_NOT_HOLD
    assert claim_verdict([-0.1], low=-0.3) == DOES_NOT_HOLD
    with pytest.raises(RepicError, match="no gaps"):
        claim_verdict([], low=0.0)


# ------------------------------------------------------------------------------------------ bootstrap


def test_every_query_alike_in_every_seed_gives_a_point_interval():
    # every query (1 correct, 0 miss, 2 total): P = 1, R = 1/2, F1 = 2 * 1/2 / (3/2) = 2/3 whatever is drawn
    seeds = [QueryOutcomes(F1, np.array([[1, 0, 2]] * 5)) for _ in range(3)]
    summary = summarize_seeds(seeds, resamples=200)
    assert summary.values == (pytest.approx(2 / 3),) * 3
    assert (summary.std, summary.minimum, summary.maximum) == (0.0, summary.values[0], summary.values[0])
    assert summary.low == pytest.approx(2 / 3) and summary.high == pytest.approx(2 / 3)
    assert summary.mean == pytest.approx(2 / 3) and summary.level == 0.95


def test_a_gap_that_is_always_one_holds_with_the_interval_one_one():
    mine = [rates(20, 20)] * 3  # every query a hit in every seed: 1.0
    theirs = [rates(0, 20)] * 3  # never: 0.0
    gap = summarize_gap(mine, theirs, resamples=200)
    assert (gap.gaps, gap.mean, gap.low, gap.high, gap.verdict) == ((1.0,) * 3, 1.0, 1.0, 1.0, HOLDS)
    # the other way round, or against itself: does not hold
    assert summarize_gap(theirs, mine, resamples=200).verdict == DOES_NOT_HOLD
    assert summarize_gap(mine, mine, resamples=200).verdict == DOES_NOT_HOLD  # mean gap 0


def test_one_seed_rate_interval_is_close_to_the_normal_approximation():
    # p = 280 / 400 = 0.7; standard error sqrt(0.7 * 0.3 / 400) = sqrt(0.000525) = 0.02291;
    # 1.96 * 0.02291 = 0.0449 -> [0.6551, 0.7449]
    summary = summarize_seeds([rates(280, 400)])
    half = 1.96 * math.sqrt(0.7 * 0.3 / 400)
    assert summary.values == (0.7,) and summary.std == 0.0
    assert summary.low == pytest.approx(0.7 - half, abs=0.02)
    assert summary.high == pytest.approx(0.7 + half, abs=0.02)


def test_more_spread_between_seeds_widens_the_interval():
    close = summarize_seeds([rates(70, 100), rates(71, 100), rates(69, 100)])
    spread = summarize_seeds([rates(50, 100), rates(70, 100), rates(90, 100)])
    assert close.mean == pytest.approx(0.7) and spread.mean == pytest.approx(0.7)
    # std: sqrt((0.01^2 + 0 + 0.01^2) / 2) = 0.01, and sqrt((0.2^2 + 0 + 0.2^2) / 2) = 0.2
    assert (close.std, spread.std) == (pytest.approx(0.01), pytest.approx(0.2))
    assert (spread.minimum, spread.maximum) == (0.5, 0.9)
    assert spread.high - spread.low > 2 * (close.high - close.low)


def test_the_gap_is_paired_query_by_query():
    # mine hits wherever theirs does, plus on 5 more of the 100 queries: only those 5 move the gap.
    # Paired, its standard error is sqrt(0.05 * 0.95 / 100) = 0.0218, a 95 % interval about 0.085 wide;
    # drawn independently it would be sqrt(0.65 * 0.35 / 100 + 0.6 * 0.4 / 100) = 0.0681, about 0.27 wide.
    mine = rate_outcomes([True] * 65 + [False] * 35)
    theirs = rate_outcomes([True] * 60 + [False] * 40)
    gap = summarize_gap([mine], [theirs], resamples=1000)
    assert gap.mean == pytest.approx(0.05)
    assert gap.high - gap.low < 0.12
    assert gap.low > 0 and gap.verdict == HOLDS


def test_a_model_trained_once_is_compared_with_every_seed():
    base = rates(50, 100)  # 0.5
    seeded = [rates(60, 100), rates(70, 100), rates(40, 100)]
    gap = summarize_gap(seeded, [base], resamples=200)
    # gaps 0.6 - 0.5, 0.7 - 0.5, 0.4 - 0.5: mean 0.2 / 3 > 0 but one seed is below: within noise
    assert gap.gaps == pytest.approx((0.1, 0.2, -0.1))
    assert gap.mean == pytest.approx(0.2 / 3) and gap.verdict == WITHIN_NOISE


def test_the_bootstrap_is_deterministic_for_a_seed():
    seeds = [rates(60, 100), rates(70, 100)]
    assert summarize_seeds(seeds, rng_seed=3) == summarize_seeds(seeds, rng_seed=3)
    assert summarize_seeds(seeds, rng_seed=3) != summarize_seeds(seeds, rng_seed=4)
    gap = summarize_gap(seeds, [rates(50, 100)], rng_seed=3)
    assert gap == summarize_gap(seeds, [rates(50, 100)], rng_seed=3)


# ------------------------------------------------------------------------------------------ errors


def test_outcomes_that_cannot_be_compared_are_refused_with_the_fix():
    with pytest.raises(RepicError, match="no seeds"):
        summarize_seeds([])
    with pytest.raises(RepicError, match="no queries"):
        summarize_seeds([rate_outcomes([])])
    with pytest.raises(RepicError, match="answered 10 and 12 queries"):
        summarize_seeds([rates(5, 10), rates(5, 12)])
    with pytest.raises(RepicError, match="answered 10 and 12 queries; every model must answer the same"):
        summarize_gap([rates(5, 10)], [rates(5, 12)])
    with pytest.raises(RepicError, match=r"measured differently \(rate and f1\)"):
        summarize_gap([rates(1, 1)], [QueryOutcomes(F1, np.array([[1, 0, 1]]))])
    with pytest.raises(RepicError, match="cannot pair 2 seeds with 3"):
        summarize_gap([rates(1, 2)] * 2, [rates(1, 2)] * 3)
    with pytest.raises(RepicError, match=r"shape \[n_queries, 3\]"):
        QueryOutcomes(F1, np.array([[1, 1]]))
    with pytest.raises(RepicError, match="non-negative"):
        QueryOutcomes(RATE, np.array([[-1, 1]]))
    with pytest.raises(RepicError, match="level must be between 0 and 1"):
        summarize_seeds([rates(1, 2)], level=95)
