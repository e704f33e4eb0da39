"""The default's GP models ranks (normal scores), so one failed cell cannot flatten the top."""

from __future__ import annotations

import numpy as np
import pytest

from morphml.optimizers.surrogate import normal_scores


def test_normal_scores_keep_the_order_and_share_ties() -> None:
    scores = normal_scores(np.array([0.91, 0.10, 0.90, 0.91, 0.50]))
    assert scores[1] < scores[4] < scores[2] < scores[0]
    assert scores[0] == scores[3]  # equal observations, equal scores
    distinct = normal_scores(np.array([0.3, 0.1, 0.2]))
    assert distinct == pytest.approx([0.967, -0.967, 0.0], abs=1e-3)  # quantiles 5/6, 1/6, 1/2


def test_a_failure_does_not_squeeze_the_gaps_near_the_top() -> None:
    top = np.array([0.915, 0.913, 0.911])
    with_failure = normal_scores(np.concatenate([top, [0.10]]))[:3]
    # Raw scores: the 0.002 steps shrink to nothing beside a gap of 0.8; as ranks they stay steps.
    assert np.diff(with_failure).min() < -0.3
