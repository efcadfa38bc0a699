import numpy as np
import pytest
import torch

import noisylabels as nl


def _blobs(n=240, seed=0):
    """Three well-separated Gaussian blobs in 2-D."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[0, 4], [4, -2], [-4, -2]], dtype=np.float32)
    X = centers[y] + rng.normal(0, 0.7, (n, 2)).astype(np.float32)
    return X, y


def test_fit_learns_a_tiny_problem_and_records_every_epoch():
    X, y = _blobs()
    X_test, y_test = _blobs(seed=1)
    history = nl.fit(nl.MLP(2, (16,), 3), (X, y), (X_test, y_test), num_epochs=15, lr=0.05,
                     batch_size=32, progress=False)
    assert history.epoch == list(range(1, 16))
    for key in ("train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds"):
        assert len(history[key]) == 15
    assert history.test_acc[-1] > 0.95 and history.train_loss[-1] < history.train_loss[0]
    assert history.epochs_to_fit(0.9) is not None


def test_fit_is_reproducible_with_a_seed():
    X, y = _blobs()
    runs = []
    for _ in range(2):
        nl.seed_everything(3)  # the model's initial weights
        runs.append(nl.fit(nl.MLP(2, (8,), 3), (X, y), num_epochs=3, lr=0.05, seed=3, progress=False))
    assert runs[0].train_loss == runs[1].train_loss


def test_fit_records_per_example_losses_on_the_training_labels():
    X, y = _blobs(60)
    model = nl.MLP(2, (8,), 3)
    history = nl.fit(model, (X, y), num_epochs=4, lr=0.05, record_example_losses=True, progress=False)
    assert history.example_losses.shape == (4, 60)
    assert np.allclose(history.example_losses[-1], nl.per_example_losses(model, (X, y)), atol=1e-5)
    assert history.example_losses[-1].mean() == pytest.approx(history.train_loss[-1], rel=1e-5)


def test_mlp_memorizes_random_labels():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 10)).astype(np.float32)
    y = rng.integers(0, 4, 64)
    history = nl.fit(nl.MLP(10, (256,), 4), (X, y), num_epochs=200, lr=0.05, batch_size=16,
                     stop_at_train_acc=1.0, progress=False)
    assert history.train_acc[-1] == 1.0
    assert len(history.epoch) < 200  # stopped as soon as it fitted


def test_lr_decay_multiplies_the_learning_rate_every_epoch():
    X, y = _blobs(40)
    history = nl.fit(nl.MLP(2, (4,), 3), (X, y), num_epochs=3, lr=0.1, lr_decay=0.95, progress=False)
    assert history.lr == pytest.approx([0.1, 0.095, 0.09025])


def test_zero_sample_weights_remove_examples_from_training():
    X, y = _blobs(120)
    y_bad = y.copy()
    y_bad[:60] = (y[:60] + 1) % 3  # half the labels wrong
    weights = np.r_[np.zeros(60), np.ones(60)]
    model = nl.MLP(2, (16,), 3)
    nl.fit(model, (X, y_bad), num_epochs=30, lr=0.05, batch_size=20, sample_weights=weights, progress=False)
    # trained only on the clean half, it predicts the true labels of the dirty half
    assert (nl.predict_proba(model, X[:60]).argmax(1) == y[:60]).mean() > 0.9


def test_fit_accepts_a_mislabeled_dataset_and_custom_loss_with_epoch_hook():
    X, y = _blobs(50)
    data = torch.utils.data.TensorDataset(torch.tensor(X), torch.tensor(y))
    wrapped = nl.MislabeledDataset(data, 0.2, 3, seed=0)

    class CountingLoss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.epochs = []

        def set_epoch(self, epoch):
            self.epochs.append(epoch)

        def forward(self, logits, target):
            return torch.nn.functional.cross_entropy(logits, target)

    loss = CountingLoss()
    nl.fit(nl.MLP(2, (8,), 3), wrapped, num_epochs=3, lr=0.05, loss_fn=loss, progress=False)
    assert loss.epochs == [1, 2, 3]
    X_t, y_t = nl.as_tensors(wrapped)
    assert torch.equal(y_t, torch.as_tensor(wrapped.noisy_targets()))


def test_fit_with_a_step_function_doing_the_default_step_repeats_plain_fit():
    X, y = _blobs(90)
    X_test, y_test = _blobs(30, seed=1)

    def plain_step(model, optimizer, X_batch, y_batch, index):
        logits = model(X_batch)
        loss = torch.nn.functional.cross_entropy(logits, y_batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach(), logits.detach()

    ended = []
    runs = []
    for hooks in ({}, dict(step_fn=plain_step, on_epoch_end=lambda epoch, h: ended.append((epoch, len(h.epoch))))):
        nl.seed_everything(4)
        runs.append(nl.fit(nl.MLP(2, (8,), 3), (X, y), (X_test, y_test), num_epochs=3, lr=0.05, batch_size=20,
                           eval_train=False, progress=False, **hooks))
    assert runs[0].train_loss == runs[1].train_loss and runs[0].test_acc == runs[1].test_acc
    assert ended == [(1, 1), (2, 2), (3, 3)]  # called once an epoch, after that epoch's records


@pytest.mark.parametrize("name, plain", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_adam_by_name_is_fused_and_trains_as_torchs_plain_adam(name, plain):
    X, y = _blobs()
    models = []
    for optimizer in (name, lambda params: plain(params, lr=1e-2, weight_decay=1e-3, foreach=False)):
        torch.manual_seed(0)
        model = nl.MLP(X.shape[1], (16,), 3)
        nl.fit(model, (X, y), num_epochs=3, lr=1e-2, weight_decay=1e-3, optimizer=optimizer, batch_size=8,
               progress=False)
        models.append(model)
    assert nl.training._make_optimizer(name, models[0].parameters(), 1e-2, 0.9, 0.0).defaults["fused"]
    for fused, plain_param in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(fused, plain_param, rtol=1e-5, atol=1e-6)


def test_evaluate_and_predict_proba_agree():
    X, y = _blobs(30)
    model = nl.MLP(2, (8,), 3)
    loss, acc = nl.evaluate(model, (X, y))
    probs = nl.predict_proba(model, X)
    assert probs.shape == (30, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert acc == pytest.approx((probs.argmax(1) == y).mean())
    assert loss == pytest.approx(-np.log(probs[np.arange(30), y]).mean(), rel=1e-4)


@pytest.mark.parametrize("model", [nl.LeNet(), nl.SmallInception(width=0.25), nl.MLP()])
def test_shared_models_map_mnist_images_to_ten_logits(model):
    assert tuple(model(torch.zeros(2, 1, 28, 28)).shape) == (2, 10)


def test_models_take_cifar_sized_colour_images():
    assert tuple(nl.LeNet(in_channels=3)(torch.zeros(2, 3, 32, 32)).shape) == (2, 10)
    assert tuple(nl.SmallInception(in_channels=3, width=0.25)(torch.zeros(2, 3, 32, 32)).shape) == (2, 10)


def test_small_inception_at_full_width_has_the_papers_size():
    # Zhang et al.'s small Inception has about 1.65 million parameters
    assert 1.4e6 < nl.count_parameters(nl.SmallInception(in_channels=3, width=1.0)) < 1.9e6


def test_run_size_reads_the_environment(monkeypatch):
    monkeypatch.setenv("NOISYLABELS_SIZE", "quick")
    assert nl.run_size() == "quick"
    monkeypatch.delenv("NOISYLABELS_SIZE")
    assert nl.run_size() == "default"
    monkeypatch.setenv("NOISYLABELS_SIZE", "huge")
    with pytest.raises(ValueError, match="quick, default or full"):
        nl.run_size()


def test_seed_everything_repeats_torch_and_numpy_draws():
    nl.seed_everything(5)
    a = (torch.rand(3), np.random.rand(3))
    nl.seed_everything(5)
    b = (torch.rand(3), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_plot_helpers_draw_without_a_screen(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from noisylabels import plots

    X, y = _blobs(30)
    history = nl.fit(nl.MLP(2, (4,), 3), (X, y), (X, y), num_epochs=2, progress=False)
    ax = plots.plot_history(history)
    assert len(ax.lines) == 2
    ax = plots.plot_corruption_curve([0, 0.5, 1], {"train": [0, 0, 0], "test": [0.1, 0.5, 0.9]}, chance=0.9)
    assert len(ax.lines) == 3
    ax = plots.plot_transition_matrix(nl.expected_transition_matrix(0.2, 4))
    assert ax.images[0].get_array().shape == (4, 4)
    fig = plots.show_images(np.zeros((5, 8, 8)), titles=list("abcde"), ncols=3)
    fig.savefig(tmp_path / "g.png")
    assert (tmp_path / "g.png").stat().st_size > 0


def test_start_notebook_seeds_reads_the_size_and_sets_threads(monkeypatch, capsys):
    monkeypatch.setenv("NOISYLABELS_SIZE", "quick")
    threads = torch.get_num_threads()
    try:
        assert nl.start_notebook(seed=7, num_threads=1) == "quick"
        first = torch.rand(3)
        assert torch.get_num_threads() == 1
        assert nl.start_notebook(seed=7, size="default") == "default"
        assert torch.equal(torch.rand(3), first)
    finally:
        torch.set_num_threads(threads)
    assert "size: quick" in capsys.readouterr().out
    with pytest.raises(ValueError, match="quick, default or full"):
        nl.start_notebook(size="huge")


def test_early_stopping_on_a_held_out_set_keeps_the_epoch_with_the_best_validation_accuracy():
    X, y = _blobs()
    X_val, y_val = _blobs(n=60, seed=2)
    X_test, y_test = _blobs(seed=1)
    history = nl.fit(nl.MLP(2, (16,), 3), (X, y), (X_test, y_test), num_epochs=6, lr=0.05, batch_size=32,
                     progress=False, val=(X_val, y_val))
    assert len(history.val_acc) == len(history.val_loss) == 6
    history["val_acc"] = [0.2, 0.9, 0.5, 0.9, 0.1, 0.3]   # a peak, then a tie later: the first best wins
    history["test_acc"] = [0.1, 0.7, 0.8, 0.95, 0.2, 0.4]
    assert history.best_epoch() == 2
    assert history.early_stopped() == 0.7
    no_val = nl.fit(nl.MLP(2, (16,), 3), (X, y), num_epochs=1, progress=False)
    with pytest.raises(KeyError, match="pass val="):
        no_val.early_stopped()
