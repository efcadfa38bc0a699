"""Noisy Labels: the course library shared by the lessons and the assignments.

The modules, and the lesson that teaches each:

- :mod:`noisylabels.data`: offline MNIST digits, IDX files, CIFAR-10 batches (lesson 01)
- :mod:`noisylabels.noise`: corruption models, ``MislabeledDataset`` (lessons 01, 03)
- :mod:`noisylabels.models`: MLP, LeNet, Zhang et al.'s small Inception (lesson 01)
- :mod:`noisylabels.training`: the training loop and evaluation helpers (lesson 01)
- :mod:`noisylabels.plots`: shared figures (lesson 01)
- :mod:`noisylabels.memorization`: Zhang et al.'s corruption-vs-generalization sweep (lesson 01)
- :mod:`noisylabels.grokking`: modular arithmetic with mislabels, the small transformer (lesson 03)
- :mod:`noisylabels.losses`: label smoothing, robust losses and reductions, calibration (lesson 04)
- :mod:`noisylabels.weighting`: class-imbalance tasks, resampling, class and loss-based weights, noise
  adaptation (lesson 05)
- :mod:`noisylabels.reweight`: learning to reweight examples, Ren et al. 2018 (lesson 06)
- :mod:`noisylabels.evil_twins`: homework 2's data generator (the grading rules live in ``autograder/``)
- :mod:`noisylabels.detection`: finding mislabeled examples: training signals, out-of-sample votes,
  confident learning, evil twins (lesson 02)
- :mod:`noisylabels.review`: a person's blind review of the suspects, precision with a Wilson interval (lesson 02)

``import noisylabels`` is quick: each name below is imported from its module on first use
(``nl.fit`` imports :mod:`noisylabels.training`, and torch with it), so the ``noisylabels``
command and homework 2's grader, which need no torch, start in a fraction of a second.
"""

import importlib
import pkgutil

_EXPORTS = {
    "data": (
        "default_data_root", "label_array", "load_cifar10", "load_mnist_idx_dir",
        "load_offline_mnist", "load_small_digits", "read_idx", "read_idx_images", "read_idx_labels",
        "to_tensors", "torchvision_available", "with_channel_axis", "write_idx", "write_idx_images",
        "write_idx_labels",
    ),
    "evil_twins": (
        "make_evil_twin_set", "write_evil_twin_files",
    ),
    "losses": (
        "LOSS_FACTORIES", "ROBUST_LOSSES", "BootstrappingLoss", "GeneralizedCrossEntropy",
        "LabelSmoothingCE", "LossModule", "SmallLossSelection", "TrimmedMeanLoss",
        "bootstrap_hard_loss", "bootstrap_soft_loss", "coteaching_forget_rate",
        "expected_calibration_error", "generalized_cross_entropy", "label_smoothing_cross_entropy",
        "make_robust_loss", "train_with_loss", "reliability_diagram_data", "reverse_cross_entropy",
        "small_loss_mask", "smoothed_targets", "soft_cross_entropy", "symmetric_cross_entropy",
        "trimmed_mean",
    ),
    "grokking": (
        "GrokkingRun", "GrokkingTransformer", "ModularArithmetic", "attention_entropy",
        "make_grokking_data", "parameter_norm", "train_grokking", "train_grokking_runs",
    ),
    "models": (
        "MLP", "LeNet", "SmallInception", "count_parameters",
    ),
    "memorization": (
        "ZHANG_LEVELS", "ZHANG_SETTINGS", "CorruptionCurve", "corruption_sweep", "make_model",
        "mean_loss_by_group", "memorized",
    ),
    "noise": (
        "NOISE_KINDS", "MislabeledDataset", "corrupt_labels", "expected_transition_matrix",
        "noise_transition_matrix",
    ),
    "results": (
        "Results", "format_spread", "mean_and_spread", "report_result",
    ),
    "review": (
        "image_key", "load_label_review", "review_buttons", "review_precision", "wilson_interval",
    ),
    "reweight": (
        "IMBALANCE_METHODS", "NOISE_METHODS", "example_weights", "fit_reweighted",
        "imbalance_errors", "look_ahead", "noise_accuracies", "noisy_digits_with_clean_val",
        "rectify_and_normalize", "reweighted_step", "reweighted_step_seconds", "validation_gradient",
    ),
    "training": (
        "History", "as_tensors", "evaluate", "fit", "get_device", "per_example_losses",
        "predict_proba", "run_size", "start_notebook", "seed_everything",
    ),
    "weighting": (
        "LOSS_WEIGHTING_RULES", "MINORITY_LABEL", "LossWeightedCrossEntropy",
        "NoiseAdaptationLayer", "balanced_error", "class_error_rates",
        "class_weights_from_frequencies", "example_weights_from_classes", "imbalanced_pair",
        "imbalanced_subset", "loss_based_weights", "oversample_indices", "smote_oversample",
        "subsample_imbalanced", "undersample_indices",
    ),
    "detection": (
        "NOISE_FAMILIES", "EvilTwinFile", "SubsetVotes", "TrainingSignals", "aum_scores",
        "aum_threshold_samples", "calibrate_confident_joint", "confident_joint",
        "confident_learning_issues", "cross_val_pred_probs", "duplicate_pairs", "early_loss_scores",
        "estimate_joint", "estimated_num_errors", "exact_duplicate_groups", "final_loss_scores",
        "flag_scores", "judge_twin_pairs", "label_margins", "lookalike_noise",
        "loss_trajectory_scores", "noisy_labels", "per_class_thresholds", "plant_and_recover",
        "plant_evil_twins", "precision_recall_at_k", "precision_recall_curve_points",
        "prune_by_noise_rate", "rank_by_self_confidence", "ranking_report",
        "record_training_signals", "retrain_comparison", "retrain_test_accuracy", "self_confidence",
        "self_confidence_by_epoch", "shift_tolerant_distances", "subset_votes", "train_classifier",
    ),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
_MODULES = {module.name for module in pkgutil.iter_modules(__path__)}

__version__ = "0.1.0"
__all__ = sorted(_MODULE_OF)


def __getattr__(name):
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
        globals()[name] = value
        return value
    if name in _MODULES:  # a module not imported yet: nl.noise
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_MODULE_OF) | _MODULES)
