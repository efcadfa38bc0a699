"""Finding mislabeled examples (noisylabels.detection, lesson 02) on small planted problems."""

import numpy as np
import pytest
import torch

import noisylabels as nl
from noisylabels import detection as d


def _blobs_with_flips(n=300, flip=0.2, seed=0):
    """Three well-separated Gaussian blobs in 2-D; a fraction ``flip`` of labels moved to another class."""
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 3, n)
    centers = np.array([[0, 4], [4, -2], [-4, -2]], dtype=np.float32)
    X = (centers[y_true] + rng.normal(0, 0.8, (n, 2))).astype(np.float32)
    y_noisy, is_mislabeled = nl.corrupt_labels(y_true, flip, 3, kind="flip", seed=seed)
    return X, y_true, y_noisy, is_mislabeled


def _random_pred_probs(n=400, num_classes=5, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    logits = rng.normal(0, 1, (n, num_classes))
    logits[np.arange(n), labels] += rng.choice([3.0, -1.0], n, p=[0.8, 0.2])
    pred_probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return pred_probs, labels


def test_label_margin_is_given_logit_minus_largest_other_and_negative_when_another_class_wins():
    logits = np.array([[3.0, 1.0, 0.5], [0.0, 2.0, 1.0]])
    margins = d.label_margins(logits, np.array([0, 0]))
    assert np.allclose(margins, [2.0, -2.0])
    as_tensor = d.label_margins(torch.tensor(logits), torch.tensor([2, 1]))
    assert torch.allclose(as_tensor, torch.tensor([-2.5, 1.0], dtype=as_tensor.dtype))


def test_training_signals_have_one_row_an_epoch_and_early_loss_and_aum_find_planted_flips():
    X, y_true, y_noisy, is_mislabeled = _blobs_with_flips()
    signals = d.record_training_signals(X, y_noisy, X, y_true, hidden=(64,), num_epochs=8, lr=0.05,
                                        batch_size=32)
    assert signals.losses.shape == signals.margins.shape == (8, len(y_noisy))
    assert len(signals.train_acc) == len(signals.test_acc) == 8
    for scores in (d.early_loss_scores(signals.losses, 3), d.aum_scores(signals.margins),
                   d.loss_trajectory_scores(signals.losses)):
        report = d.ranking_report(scores, is_mislabeled)
        assert report["precision"] >= 0.85 and report["auroc"] >= 0.95, report


def test_suspicion_scores_summarize_the_loss_and_margin_curves():
    losses = np.array([[1.0, 4.0], [3.0, 2.0], [5.0, 0.0]])
    assert np.allclose(d.final_loss_scores(losses), [5.0, 0.0])
    assert np.allclose(d.early_loss_scores(losses, 2), [2.0, 3.0])
    assert np.allclose(d.loss_trajectory_scores(losses), [3.0, 2.0])
    assert np.allclose(d.aum_scores(-losses), [3.0, 2.0])


def test_cross_validated_probabilities_are_out_of_sample_so_flipped_labels_get_low_confidence():
    X, _, y_noisy, is_mislabeled = _blobs_with_flips()
    pred_probs = d.cross_val_pred_probs(X, y_noisy, num_folds=3, num_classes=3, hidden=(32,), num_epochs=30,
                                        lr=0.01, batch_size=32)
    assert pred_probs.shape == (len(y_noisy), 3) and np.allclose(pred_probs.sum(1), 1, atol=1e-5)
    conf = d.self_confidence(pred_probs, y_noisy)
    assert np.median(conf[is_mislabeled]) < 0.2 < 0.6 < np.median(conf[~is_mislabeled])


def test_cross_validation_with_groups_keeps_each_group_in_one_fold(monkeypatch):
    X, _, y_noisy, _ = _blobs_with_flips(n=120)
    groups = np.arange(len(y_noisy)) // 2  # pairs
    seen_train = []

    def fake_train(X_, y_, **kwargs):
        seen_train.append(set(map(tuple, X_.tolist())))
        return nl.MLP(2, (4,), 3)

    monkeypatch.setattr(d, "train_classifier", fake_train)
    d.cross_val_pred_probs(X, y_noisy, num_folds=4, groups=groups, num_classes=3)
    for trained in seen_train:
        inside = np.array([tuple(x) in trained for x in X.tolist()])
        assert (inside[0::2] == inside[1::2]).all(), "a pair was split between training and held-out"


def test_subset_votes_hold_out_every_example_equally_often_and_flipped_labels_collect_the_votes():
    X, _, y_noisy, is_mislabeled = _blobs_with_flips()
    votes = d.subset_votes(X, y_noisy, num_runs=6, num_classes=3, hidden=(32,), num_epochs=30, lr=0.01,
                           batch_size=32)
    assert (votes.held_out == 2).all(), "two rounds of three runs hold every example out twice"
    assert (votes.votes <= votes.held_out).all()
    assert votes.vote_fraction[is_mislabeled].mean() > 0.8
    assert votes.vote_fraction[~is_mislabeled].mean() < 0.1
    assert d.ranking_report(votes.scores, is_mislabeled)["precision"] >= 0.85


def test_confident_learning_by_hand_matches_cleanlab_step_by_step():
    from cleanlab.count import compute_confident_joint, get_confident_thresholds
    from cleanlab.filter import find_label_issues

    for seed in range(3):
        pred_probs, labels = _random_pred_probs(seed=seed)
        thresholds = d.per_class_thresholds(pred_probs, labels)
        assert thresholds.shape == (5,)
        assert np.allclose(thresholds, get_confident_thresholds(labels, pred_probs))
        joint = d.confident_joint(pred_probs, labels)
        assert joint.shape == (5, 5)
        assert (joint == compute_confident_joint(labels, pred_probs, calibrate=False)).all()
        issues = d.confident_learning_issues(pred_probs, labels)
        expected = find_label_issues(labels, pred_probs, filter_by="confident_learning")
        assert issues.any() and (issues == expected).all()
        ranked = d.rank_by_self_confidence(issues, pred_probs, labels)
        expected_ranked = find_label_issues(labels, pred_probs, filter_by="confident_learning",
                                            return_indices_ranked_by="self_confidence")
        assert list(ranked) == list(expected_ranked)


def test_precision_recall_and_auroc_of_a_ranking():
    is_mislabeled = np.array([1, 1, 0, 0, 0, 0], dtype=bool)
    perfect = np.array([6, 5, 4, 3, 2, 1])
    assert d.ranking_report(perfect, is_mislabeled) == {"precision": 1.0, "recall": 1.0, "auroc": 1.0}
    half = np.array([6, 1, 5, 4, 3, 2])  # one hit in the top two, one at the bottom
    assert d.precision_recall_at_k(half, is_mislabeled) == (0.5, 0.5)
    assert d.ranking_report(half, is_mislabeled)["auroc"] == pytest.approx(0.5)
    precision, recall = d.precision_recall_curve_points(half, is_mislabeled)
    assert np.allclose(precision, [1, 1 / 2, 1 / 3, 1 / 4, 1 / 5, 2 / 6])
    assert np.allclose(recall, [0.5, 0.5, 0.5, 0.5, 0.5, 1.0])


def test_retrain_uses_only_the_kept_examples():
    X, y_true, _, _ = _blobs_with_flips(flip=0.0)
    everything = d.retrain_test_accuracy(X, y_true, X, y_true, num_classes=3, hidden=(16,), num_epochs=20,
                                         lr=0.01, batch_size=32)
    one_class = d.retrain_test_accuracy(X, y_true, X, y_true, keep=y_true == 0, num_classes=3, hidden=(16,),
                                        num_epochs=20, lr=0.01, batch_size=32)
    assert everything > 0.95
    assert one_class == pytest.approx((y_true == 0).mean())


def _small_images(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = np.zeros((n, 8, 8), dtype=np.float32)
    X[:, 1:7, 1:7] = rng.random((n, 6, 6)) * (rng.random((n, 6, 6)) < 0.5)  # a blank border
    return X, rng.integers(0, 10, n)


def test_planted_evil_twins_are_copies_with_another_label_and_absent_good_twins_are_marked():
    X, y = _small_images(200)
    f = d.plant_evil_twins(X, y, size=80, n_twins=12, absent=3, seed=1)
    assert f.images.shape == (80, 8, 8) and f.is_evil_twin.sum() == 12
    assert sorted(f.good_twin) == list(np.flatnonzero(f.is_evil_twin))
    assert sum(g == -1 for g in f.good_twin.values()) == 3
    D = d.shift_tolerant_distances(f.images)
    for evil, good in f.good_twin.items():
        if good >= 0:
            assert f.labels[evil] != f.labels[good]
            assert D[evil, good] < 0.5 * np.median(D.min(1)[~f.is_evil_twin])


def test_exact_hashes_find_only_exact_copies_and_the_shift_tolerant_distance_finds_moved_ones():
    X, _ = _small_images(10)
    images = np.concatenate([X, X[[0]], d._shift(X[1], 0, 1)[None]])  # 10 = copy of 0, 11 = moved copy of 1
    assert d.exact_duplicate_groups(images) == [[0, 10]]
    plain = np.sqrt(((images[11] - images[1]) ** 2).sum())
    D = d.shift_tolerant_distances(images, max_shift=1)
    assert plain > 0.5 and D[1, 11] == pytest.approx(0.0, abs=1e-6)
    assert np.allclose(D, D.T) and np.isinf(np.diag(D)).all()
    assert set(d.duplicate_pairs(D, 1e-3)) == {(0, 10), (1, 11)}


def test_judging_a_pair_flags_the_twin_whose_label_the_model_finds_less_likely():
    pred_probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.2, 0.8], [0.3, 0.7]])
    labels = np.array([0, 1, 0, 1])
    assert d.judge_twin_pairs([(0, 1), (2, 3)], labels, pred_probs) == [1, 2]
    assert d.judge_twin_pairs([(0, 2)], labels, pred_probs) == []  # same label: not a conflict


def test_pruning_by_noise_rate_by_hand_flags_exactly_what_cleanlab_default_flags():
    from cleanlab.filter import find_label_issues

    for seed in range(4):
        pred_probs, labels = _random_pred_probs(n=1500, seed=seed)
        pruned = d.prune_by_noise_rate(pred_probs, labels)
        assert pruned.any() and (pruned == find_label_issues(labels, pred_probs)).all()


def test_calibration_scales_rows_to_label_counts_and_the_estimate_recovers_a_known_noise_count():
    pred_probs, labels = _random_pred_probs(seed=5)
    joint = d.confident_joint(pred_probs, labels)
    calibrated = d.calibrate_confident_joint(joint, labels)
    assert np.allclose(calibrated.sum(1), np.bincount(labels, minlength=5))
    assert d.estimate_joint(pred_probs, labels).sum() == pytest.approx(1.0)
    # confident probabilities of the true class: the estimate counts exactly the flipped labels
    y_true = np.repeat(np.arange(4), 50)
    y_noisy = y_true.copy()
    y_noisy[::10] = (y_true[::10] + 1) % 4
    probs = np.full((200, 4), 0.02)
    probs[np.arange(200), y_true] = 0.94
    assert d.estimated_num_errors(probs, y_noisy) == 20
    assert (d.prune_by_noise_rate(probs, y_noisy) == (y_noisy != y_true)).all()


def test_the_papers_rule_takes_the_most_probable_class_among_those_that_clear_their_thresholds():
    pred_probs = np.array([[0.5, 0.3, 0.2], [0.45, 0.35, 0.2]])
    thresholds = np.array([0.6, 0.3, 0.2])  # example 1 clears classes 1 and 2, not its top class 0
    assert d.confident_joint(pred_probs[:1], np.array([2]), thresholds, rule="cleanlab")[2, 0] == 1
    assert d.confident_joint(pred_probs[:1], np.array([2]), thresholds, rule="paper")[2, 1] == 1
    with pytest.raises(ValueError, match="rule"):
        d.confident_joint(pred_probs, np.array([0, 1]), thresholds, rule="other")


def test_lookalike_noise_sets_the_chosen_labels_to_the_held_out_second_choice(monkeypatch):
    y_true = np.arange(100) % 4
    probs = np.tile([0.1, 0.2, 0.3, 0.4], (100, 1))
    monkeypatch.setattr(d, "cross_val_pred_probs", lambda X, y, **kw: probs.copy())
    y_noisy, is_mislabeled = d.lookalike_noise(np.zeros((100, 2)), y_true, 0.2, num_classes=4)
    assert is_mislabeled.sum() == 20
    second = np.where(y_true == 3, 2, 3)  # the most probable class that is not the true one
    assert (y_noisy[is_mislabeled] == second[is_mislabeled]).all()
    assert (y_noisy[~is_mislabeled] == y_true[~is_mislabeled]).all()
    with pytest.raises(ValueError, match="family"):
        d.noisy_labels("gaussian", 0.2, None, y_true)
    assert (d.noisy_labels("pair", 1.0, None, y_true, num_classes=4)[0] == (y_true + 1) % 4).all()


def test_flag_scores_put_flagged_examples_first_and_keep_the_self_confidence_order():
    pred_probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    labels = np.array([0, 0, 0, 0])
    order = np.argsort(-d.flag_scores(np.array([False, False, True, True]), pred_probs, labels))
    assert list(order) == [3, 2, 1, 0]


def test_cutoffs_without_the_answer_key_flag_the_planted_flips_and_judge_every_example():
    X, _, y_noisy, is_mislabeled = _blobs_with_flips(n=400)
    for scores, flags, cutoffs in (
            # with 3 classes and 20 % flips, a tenth of the plants on this data put a wrong label back to its
            # true class (no longer errors), so a 90 % target would reach into the clean digits: aim at 80 %
            d.plant_and_recover(X, y_noisy, num_classes=3, hidden=(32,), num_epochs=5, lr=0.05, batch_size=32,
                                target_recall=0.8),
            d.aum_threshold_samples(X, y_noisy, num_classes=3, hidden=(32,), num_epochs=8, lr=0.05, batch_size=32)):
        assert len(cutoffs) == 2 and (scores != 0).all(), "every example gets a score from a run that kept its label"
        precision, recall = is_mislabeled[flags].mean(), is_mislabeled[flags].sum() / is_mislabeled.sum()
        assert precision >= 0.8 and recall >= 0.8, (precision, recall)


def test_retrain_comparison_trains_each_baseline_and_removes_as_many_random_digits_as_the_cleaning(monkeypatch):
    X, y_true, y_noisy, is_mislabeled = _blobs_with_flips(n=200)
    kept = []
    real = d.retrain_test_accuracy

    def spy(X_, y_, X_t, y_t, keep=None, **kw):
        kept.append(len(y_) if keep is None else int(np.sum(keep)))
        return real(X_, y_, X_t, y_t, keep=keep, **kw)

    monkeypatch.setattr(d, "retrain_test_accuracy", spy)
    out = d.retrain_comparison(X, y_noisy, X, y_true, cleaned_keep=~is_mislabeled, oracle_keep=~is_mislabeled,
                               num_epochs=3, short_epochs=1, num_classes=3)
    assert list(out) == ["noisy", "noisy_early_stopped", "noisy_short", "random_removal", "cleaned", "oracle"]
    assert kept == [200, 200, 200 - is_mislabeled.sum(), 200 - is_mislabeled.sum(), 200 - is_mislabeled.sum()]
    assert all(0 <= v <= 1 for v in out.values())


def test_self_confidence_by_epoch_has_one_row_an_epoch_for_every_example():
    X, _, y_noisy, _ = _blobs_with_flips(n=120)
    conf = d.self_confidence_by_epoch(X, y_noisy, np.arange(120) < 60, num_epochs=3, num_classes=3, hidden=(8,))
    assert conf.shape == (3, 120) and ((conf > 0) & (conf < 1)).all()
