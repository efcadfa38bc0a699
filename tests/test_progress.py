"""Training progress bars end cleanly: a run that stops early by design shows a finished
bar at the count it reached with the reason, in a terminal and as a JupyterLab widget
(tqdm.notebook turns a bar closed part-way red, which reads as a failure)."""

import numpy as np
import pytest
import torch

import noisylabels as nl
from noisylabels.training import finish_progress, progress_bar


def _tiny_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = torch.tensor(rng.normal(size=(n, 10)), dtype=torch.float32)
    y = torch.tensor(rng.integers(0, 2, n))
    return X, y


@pytest.fixture
def widget_bars(monkeypatch):
    """Make ``tqdm.auto`` hand out ipywidgets bars (as in JupyterLab) and keep them."""
    pytest.importorskip("ipywidgets")
    import tqdm.auto
    from tqdm.notebook import tqdm as notebook_tqdm

    made = []

    class Recorded(notebook_tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(tqdm.auto, "tqdm", Recorded)
    return made


def _widget_state(bar):
    left, pbar, right = bar.container.children
    text = right.value.replace("\u2007", " ")  # tqdm.notebook spaces with figure spaces
    return pbar.bar_style, pbar.value, pbar.max, text, bar.container.layout.visibility


def test_early_stop_in_terminal_ends_at_count_reached_with_reason(capsys):
    X, y = _tiny_data()
    history = nl.fit(nl.MLP(10, (8,), 2), (X, y), num_epochs=5, stop_at_train_acc=0.0, desc="tiny")
    assert history["epoch"] == [1]
    err = capsys.readouterr().err
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert "1/1" in last and "stopped: train acc 0 reached" in last, err
    assert "1/5" not in last


def test_full_run_in_terminal_leaves_no_stopped_message(capsys):
    X, y = _tiny_data()
    history = nl.fit(nl.MLP(10, (8,), 2), (X, y), num_epochs=2, desc="tiny")
    assert history["epoch"] == [1, 2]
    assert "stopped" not in capsys.readouterr().err


def test_early_stop_widget_bar_is_finished_not_red(widget_bars):
    X, y = _tiny_data()
    nl.fit(nl.MLP(10, (8,), 2), (X, y), num_epochs=5, stop_at_train_acc=0.0, desc="tiny")
    (bar,) = widget_bars
    style, value, maximum, text, _ = _widget_state(bar)
    assert style == "success", f"bar style {style!r}: an early stop must not read as a failure"
    assert value == maximum == 1
    assert "stopped: train acc 0 reached" in text


def test_full_run_widget_bar_is_removed_not_red(widget_bars):
    X, y = _tiny_data()
    nl.fit(nl.MLP(10, (8,), 2), (X, y), num_epochs=2, desc="tiny")
    (bar,) = widget_bars
    style, value, maximum, _, visibility = _widget_state(bar)
    assert style != "danger" and value == maximum == 2
    assert visibility == "hidden"  # leave=False: a finished bar is taken away


def test_grokking_stop_at_val_acc_widget_bar_is_finished(widget_bars):
    data = nl.make_grokking_data(p=13)
    model, log = nl.train_grokking(data, num_steps=20, eval_every=2, stop_at_val_acc=0.0, width=16,
                                   heads=2, layers=1, batch_size=32)
    (bar,) = widget_bars
    style, value, maximum, text, _ = _widget_state(bar)
    assert log["step"] == [2]
    assert style == "success" and value == maximum == 2
    assert "stopped: val acc 0 reached" in text


def test_bar_closed_part_way_without_a_reason_still_reads_as_failed(widget_bars):
    """The failure signal stays for real interruptions (this is what finish_progress avoids)."""
    bar = progress_bar(5, "interrupted")
    bar.update(2)
    finish_progress(bar)
    assert _widget_state(bar)[0] == "danger"


def test_disabled_bar_finishes_quietly(capsys):
    bar = progress_bar(5, "off", progress=False)
    bar.update(2)
    finish_progress(bar, "stopped: whatever")
    assert capsys.readouterr().err == ""
