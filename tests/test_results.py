"""The course's one convention for mean ± spread over seeds (noisylabels.results)."""

import numpy as np
import pytest

import noisylabels as nl


def test_spread_is_the_sample_standard_deviation_over_seeds():
    mean, spread = nl.mean_and_spread([0.90, 0.91, 0.93])
    assert mean == pytest.approx(0.91333333)
    assert spread == pytest.approx(np.std([0.90, 0.91, 0.93], ddof=1))
    assert spread > np.std([0.90, 0.91, 0.93])  # not the population sd


def test_spread_of_one_seed_is_zero_not_nan():
    mean, spread = nl.mean_and_spread([0.5])
    assert (mean, spread) == (0.5, 0.0)


def test_spread_runs_over_the_seed_axis_of_curves():
    curves = np.array([[0.1, 0.2, 0.3], [0.3, 0.2, 0.5]])
    mean, spread = nl.mean_and_spread(curves)
    assert mean.tolist() == pytest.approx([0.2, 0.2, 0.4])
    assert spread.tolist() == pytest.approx([np.sqrt(0.02), 0.0, np.sqrt(0.02)])


def test_format_spread_prints_mean_plus_minus_sd():
    assert nl.format_spread([0.899, 0.905, 0.911]) == "0.905 ± 0.006"


def test_mean_and_spread_refuses_no_values():
    with pytest.raises(ValueError, match="at least one"):
        nl.mean_and_spread([])
