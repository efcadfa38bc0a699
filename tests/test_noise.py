import numpy as np
import pytest
import torch

import noisylabels as nl

N = 20000
C = 10


def _labels(n=N, seed=1):
    return np.random.default_rng(seed).integers(0, C, n)


def _close(rate, expected, n=N):
    # 5 standard errors of a binomial proportion: fails by chance about once in 3 million
    return abs(rate - expected) <= 5 * np.sqrt(expected * (1 - expected) / n) + 1e-9


@pytest.mark.parametrize("noise_rate", [0.0, 0.2, 0.5, 1.0])
def test_uniform_noise_changes_labels_at_rate_times_one_minus_one_over_c(noise_rate):
    y = _labels()
    y_noisy, is_mislabeled = nl.corrupt_labels(y, noise_rate, C, kind="uniform", seed=0)
    assert np.array_equal(is_mislabeled, y_noisy != y)
    assert _close(is_mislabeled.mean(), noise_rate * (1 - 1 / C))


def test_uniform_noise_at_rate_one_gives_labels_independent_of_the_truth():
    y = _labels()
    y_noisy, _ = nl.corrupt_labels(y, 1.0, C, seed=0)
    T = nl.noise_transition_matrix(y, y_noisy, C)
    assert np.abs(T - 1 / C).max() < 0.04


@pytest.mark.parametrize("noise_rate", [0.1, 0.4, 0.8])
def test_flip_noise_always_changes_the_chosen_labels(noise_rate):
    y = _labels()
    y_noisy, is_mislabeled = nl.corrupt_labels(y, noise_rate, C, kind="flip", seed=3)
    assert _close(is_mislabeled.mean(), noise_rate)
    T = nl.noise_transition_matrix(y, y_noisy, C)
    off = T[~np.eye(C, dtype=bool)]
    assert np.abs(off - noise_rate / (C - 1)).max() < 0.03


def test_pair_noise_sends_class_k_to_k_plus_one():
    y = _labels()
    y_noisy, is_mislabeled = nl.corrupt_labels(y, 0.3, C, kind="pair", seed=4)
    assert np.all(y_noisy[is_mislabeled] == (y[is_mislabeled] + 1) % C)
    assert _close(is_mislabeled.mean(), 0.3)


def test_background_noise_sends_every_corrupted_label_to_one_class():
    y = _labels()
    y_noisy, is_mislabeled = nl.corrupt_labels(y, 0.4, C, kind="background", background_class=3, seed=5)
    assert np.all(y_noisy[is_mislabeled] == 3)
    # labels already 3 cannot change
    assert _close(is_mislabeled.mean(), 0.4 * (1 - np.mean(y == 3)))


@pytest.mark.parametrize("kind", nl.noise.NOISE_KINDS)
def test_empirical_transition_matrix_matches_the_expected_one(kind):
    y = _labels(50000)
    y_noisy, _ = nl.corrupt_labels(y, 0.3, C, kind=kind, seed=6)
    T = nl.noise_transition_matrix(y, y_noisy, C)
    assert np.allclose(T.sum(1), 1.0)
    assert np.abs(T - nl.expected_transition_matrix(0.3, C, kind)).max() < 0.025


def test_transition_matrix_counts_and_rows_of_absent_classes():
    counts = nl.noise_transition_matrix([0, 0, 1, 1], [0, 1, 1, 1], 3, normalize=False)
    assert counts.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]
    T = nl.noise_transition_matrix([0, 0, 1, 1], [0, 1, 1, 1], 3)
    assert T[2].tolist() == [0, 0, 0] and T[0].tolist() == [0.5, 0.5, 0]


def test_corruption_is_reproducible_with_a_seed_and_keeps_torch_type():
    y = torch.arange(100) % C
    a, ma = nl.corrupt_labels(y, 0.5, C, seed=7)
    b, mb = nl.corrupt_labels(y, 0.5, C, seed=7)
    assert isinstance(a, torch.Tensor) and torch.equal(a, b) and torch.equal(ma, mb)


def test_corrupt_labels_rejects_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        nl.corrupt_labels([0, 1], 0.1, 2, kind="gaussian")
    with pytest.raises(ValueError, match="noise_rate"):
        nl.corrupt_labels([0, 1], 1.5, 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        nl.corrupt_labels([0, 5], 0.1, 2)


class _Pairs:
    """A plain map-style dataset of (x, y)."""

    def __init__(self, n):
        self.y = np.arange(n) % C

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return np.float32(i), int(self.y[i])


def test_mislabeled_dataset_draws_round_frac_times_n_with_replacement():
    data = _Pairs(1000)
    wrapped = nl.MislabeledDataset(data, 0.3, C, seed=0)
    assert len(wrapped.drawn_indices) == round(0.3 * 1000)
    # with replacement: 300 draws from 1,000 repeat an index with near certainty
    assert len(wrapped.replaced_indices) < len(wrapped.drawn_indices)
    assert len(np.unique(wrapped.drawn_indices)) == len(wrapped.replaced_indices)
    assert wrapped.is_replaced.sum() == len(wrapped.replaced_indices)


def test_mislabeled_dataset_repeats_indices_across_seeds_as_sampling_with_replacement_predicts():
    n, draws = 200, 100
    repeats = [draws - len(nl.MislabeledDataset(_Pairs(n), draws / n, C, seed=s).replaced_indices)
               for s in range(200)]
    # expected number of repeated draws: draws - n * (1 - (1 - 1/n) ** draws)
    expected = draws - n * (1 - (1 - 1 / n) ** draws)
    assert abs(np.mean(repeats) - expected) < 1.5


def test_mislabeled_dataset_serves_the_same_labels_every_epoch():
    data = _Pairs(500)
    wrapped = nl.MislabeledDataset(data, 0.2, C, seed=1)
    epoch1 = {i: wrapped[i][1] for i in range(len(wrapped))}
    # a second epoch in another order sees exactly the same labels
    order = np.random.default_rng(0).permutation(len(wrapped))
    epoch2 = {int(i): wrapped[int(i)][1] for i in order}
    assert epoch1 == epoch2
    assert np.array_equal(wrapped.noisy_targets(), np.array([epoch1[i] for i in range(len(wrapped))]))
    assert wrapped.is_mislabeled.any()


def test_mislabeled_dataset_changes_only_drawn_examples_and_last_draw_wins():
    data = _Pairs(300)
    wrapped = nl.MislabeledDataset(data, 0.5, C, seed=2)
    last = {}
    for i, lab in zip(wrapped.drawn_indices, wrapped.drawn_labels):
        last[int(i)] = int(lab)
    for i in range(len(data)):
        x, y = wrapped[i]
        assert x == data[i][0]
        assert y == last.get(i, data[i][1])
    assert np.array_equal(wrapped.is_mislabeled, wrapped.noisy_targets() != data.y)
    assert set(wrapped.mislabeled_indices) <= set(wrapped.replaced_indices)


def test_mislabeled_dataset_wraps_a_tensor_dataset_and_keeps_tensor_labels():
    ds = torch.utils.data.TensorDataset(torch.randn(50, 3), torch.arange(50) % C)
    wrapped = nl.MislabeledDataset(ds, 0.4, C, seed=3)
    i = int(wrapped.replaced_indices[0])
    x, y = wrapped[i]
    assert isinstance(y, torch.Tensor) and y.dtype == torch.int64
    assert int(y) == int(wrapped.drawn_labels[np.flatnonzero(wrapped.drawn_indices == i)[-1]])


def test_mislabeled_dataset_at_zero_changes_nothing():
    data = _Pairs(100)
    wrapped = nl.MislabeledDataset(data, 0.0, C)
    assert not wrapped.is_replaced.any()
    assert [wrapped[i][1] for i in range(100)] == data.y.tolist()
