"""Behaviour of noisylabels.grokking: the modular-arithmetic data with fixed mislabels,
the transformer, its logged quantities and the step-based training loop."""

import math

import numpy as np
import pytest
import torch

from noisylabels import MislabeledDataset
from noisylabels.grokking import (
    GrokkingRun,
    GrokkingTransformer,
    ModularArithmetic,
    attention_entropy,
    make_grokking_data,
    parameter_norm,
    train_grokking,
    train_grokking_runs,
)
from noisylabels.training import seed_everything


def test_modular_arithmetic_lists_every_equation_with_its_answer():
    data = ModularArithmetic(7, "+")
    assert len(data) == 49 and data.vocab_size == 9 and data.num_classes == 7
    tokens, c = data[3 * 7 + 5]
    assert tokens.tolist() == [3, 7, 5, 8] and c == (3 + 5) % 7
    assert np.array_equal(data.targets, (data.tokens[:, 0] + data.tokens[:, 2]) % 7)


def test_modular_arithmetic_rejects_unknown_operation():
    with pytest.raises(ValueError):
        ModularArithmetic(7, "/")


def test_split_is_disjoint_and_covers_all_equations():
    data = make_grokking_data(11, 0.4, 0.0, seed=3)
    assert len(data.X_train) == round(0.4 * 121) and len(data.X_train) + len(data.X_val) == 121
    pairs = {tuple(t) for t in data.X_train[:, [0, 2]].tolist()} | {tuple(t) for t in data.X_val[:, [0, 2]].tolist()}
    assert len(pairs) == 121
    assert torch.equal(data.y_val, (data.X_val[:, 0] + data.X_val[:, 2]) % 11)


def test_clean_data_has_no_mislabels():
    data = make_grokking_data(11, 0.5, 0.0)
    assert not data.is_mislabeled.any() and torch.equal(data.y_noisy, data.y_true)


def test_mislabels_are_drawn_with_replacement_and_served_through_mislabeled_dataset():
    data = make_grokking_data(97, 0.4, 0.5, seed=0)
    n = len(data.X_train)
    assert isinstance(data.train, MislabeledDataset)
    assert len(data.train.drawn_indices) == round(0.5 * n)
    # draws repeat, so fewer distinct equations are replaced: about 1 - exp(-0.5)
    assert abs(data.train.is_replaced.mean() - (1 - math.exp(-0.5))) < 0.03
    assert len(np.unique(data.train.drawn_indices)) < len(data.train.drawn_indices)
    # 1 in 97 replaced answers is right by chance
    assert abs(data.is_mislabeled.mean() - data.train.is_replaced.mean() * (1 - 1 / 97)) < 0.02
    assert np.array_equal(data.y_noisy.numpy() != data.y_true.numpy(), data.is_mislabeled)


def test_mislabels_are_fixed_for_a_seed_and_change_with_it():
    a = make_grokking_data(23, 0.5, 0.2, seed=1)
    b = make_grokking_data(23, 0.5, 0.2, seed=1)
    c = make_grokking_data(23, 0.5, 0.2, seed=2)
    assert torch.equal(a.y_noisy, b.y_noisy)
    assert torch.equal(a.y_noisy, torch.as_tensor(a.train.noisy_targets()))  # same labels every read
    assert not torch.equal(a.X_train, c.X_train)


def test_transformer_predicts_one_answer_per_equation():
    model = GrokkingTransformer(vocab_size=13, num_classes=11, width=32, heads=4)
    out = model(torch.randint(0, 13, (5, 4)))
    assert out.shape == (5, 11)
    maps = model.attention_maps()
    assert len(maps) == 2 and maps[0].shape == (5, 4, 4, 4)
    # causal: no attention to later positions, rows sum to one
    assert torch.all(maps[0].triu(1) == 0) and torch.allclose(maps[0].sum(-1), torch.ones(5, 4, 4))


def test_training_forward_without_attention_maps_gives_the_same_logits_and_gradients():
    torch.manual_seed(0)
    model = GrokkingTransformer(vocab_size=13, num_classes=11, width=32, heads=4)
    tokens, y = torch.randint(0, 13, (16, 4)), torch.randint(0, 11, (16,))
    full = torch.nn.functional.cross_entropy(model(tokens), y)
    grads_full = torch.autograd.grad(full, list(model.parameters()))
    maps_before = [m.clone() for m in model.attention_maps()]
    fast = torch.nn.functional.cross_entropy(model(tokens, keep_attention=False), y)
    grads_fast = torch.autograd.grad(fast, list(model.parameters()))
    assert fast.item() == pytest.approx(full.item(), abs=1e-6)
    for g_full, g_fast in zip(grads_full, grads_fast):
        assert torch.allclose(g_full, g_fast, atol=1e-6)
    # the maps of the last full forward pass are kept, not overwritten by the fast one
    assert all(torch.equal(a, b) for a, b in zip(maps_before, model.attention_maps()))


def test_attention_entropy_is_between_zero_and_its_causal_maximum():
    model = GrokkingTransformer(vocab_size=13, num_classes=11, width=32, heads=4)
    model(torch.randint(0, 13, (8, 4)))
    ent = attention_entropy(model)
    uniform_max = np.mean([math.log(k) for k in range(1, 5)])  # position t sees t + 1 tokens
    assert 0.0 <= ent <= uniform_max + 1e-6


def test_attention_entropy_of_uniform_attention_is_log_of_visible_tokens():
    model = GrokkingTransformer(vocab_size=13, num_classes=11, width=32, heads=4)
    with torch.no_grad():
        for block in model.blocks:
            block.qkv.weight.zero_()
            block.qkv.bias.zero_()
    model(torch.randint(0, 13, (3, 4)))
    assert attention_entropy(model) == pytest.approx(np.mean([math.log(k) for k in range(1, 5)]), abs=1e-5)


def test_parameter_norm_is_the_l2_norm_of_all_parameters():
    model = GrokkingTransformer(vocab_size=13, num_classes=11, width=32, heads=4)
    expected = math.sqrt(sum(float((p.detach() ** 2).sum()) for p in model.parameters()))
    assert parameter_norm(model) == pytest.approx(expected, rel=1e-5)


def test_training_logs_every_quantity_at_each_evaluation():
    data = make_grokking_data(11, 0.5, 0.2, seed=0)
    _, log = train_grokking(data, num_steps=30, eval_every=10, batch_size=32, width=32, progress=False)
    assert log.step == [10, 20, 30]
    for key in ("train_acc", "train_loss", "val_acc", "val_loss", "param_norm", "train_attn_entropy",
                "val_attn_entropy", "seconds", "train_acc_clean", "train_acc_mislabeled"):
        assert len(log[key]) == 3, key
    assert all(0 <= a <= 1 for a in log.val_acc)


def test_clean_logs_have_no_mislabeled_split_and_record_example_losses():
    data = make_grokking_data(11, 0.5, 0.0, seed=0)
    _, log = train_grokking(data, num_steps=20, eval_every=10, batch_size=32, width=32, progress=False,
                            record_example_losses=True)
    assert "train_acc_mislabeled" not in log
    assert log.example_losses.shape == (2, len(data.X_train))


def test_small_transformer_memorizes_its_training_labels_mislabels_included():
    data = make_grokking_data(11, 0.6, 0.2, seed=0)
    assert data.is_mislabeled.sum() > 0
    _, log = train_grokking(data, num_steps=300, eval_every=100, batch_size=64, width=32, weight_decay=0.1,
                            progress=False)
    assert log.train_acc[-1] >= 0.95
    assert log.train_acc_mislabeled[-1] >= 0.8  # the wrong answers are fitted too


def test_weight_decay_shrinks_the_parameter_norm():
    data = make_grokking_data(11, 0.5, 0.0, seed=0)
    (_, weak), (_, strong) = train_grokking_runs(
        [GrokkingRun(data, weight_decay=0.0), GrokkingRun(data, weight_decay=5.0)],
        num_steps=200, eval_every=200, batch_size=32, width=32, progress=False)
    assert strong.param_norm[-1] < weak.param_norm[-1]


def test_training_stops_early_at_the_requested_validation_accuracy():
    data = make_grokking_data(11, 0.5, 0.0, seed=0)
    _, log = train_grokking(data, num_steps=100, eval_every=10, batch_size=32, width=32, progress=False,
                            stop_at_val_acc=0.0)
    assert log.step == [10] and log.steps_to_val(0.0) == 10


def _reference_run(data, num_steps, lr, weight_decay, seed, width=32, heads=4, layers=2, batch_size=32):
    """The plain loop: one GrokkingTransformer, torch.optim.AdamW, the same warm-up and batch order."""
    seed_everything(seed)
    model = GrokkingTransformer(data.vocab_size, data.num_classes, width, heads, layers)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 10))
    generator = torch.Generator().manual_seed(seed)
    order, pos = torch.randperm(len(data.X_train), generator=generator), 0
    for _ in range(num_steps):
        if pos + batch_size > len(data.X_train):
            order, pos = torch.randperm(len(data.X_train), generator=generator), 0
        idx = order[pos:pos + batch_size]
        pos += batch_size
        loss = torch.nn.functional.cross_entropy(model(data.X_train[idx]), data.y_noisy[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        model(data.X_val)
    return model


@pytest.mark.parametrize("layers", [1, 2])
def test_training_equals_a_plain_adamw_loop_on_one_transformer(layers):
    data = make_grokking_data(11, 0.5, 0.2, seed=0)
    reference = _reference_run(data, 25, 3e-3, 1.0, seed=4, layers=layers)
    model, log = train_grokking(data, num_steps=25, eval_every=25, lr=3e-3, weight_decay=1.0, seed=4, width=32,
                                layers=layers, batch_size=32, progress=False)
    for (name, a), b in zip(model.named_parameters(), reference.parameters()):
        if name.endswith("qkv.bias"):
            # the key bias shifts every score of a query alike, so its gradient is zero up to rounding,
            # which Adam scales up to steps of size lr: compare queries and values, bound the keys
            width = a.shape[0] // 3
            assert (a[width:2 * width] - b[width:2 * width]).abs().max() <= 25 * 3e-3
            a, b = torch.cat([a[:width], a[2 * width:]]), torch.cat([b[:width], b[2 * width:]])
        assert torch.allclose(a, b, atol=2e-5), name
    assert log.param_norm[-1] == pytest.approx(parameter_norm(reference), rel=1e-5)
    with torch.no_grad():
        expected_val = float((reference(data.X_val).argmax(1) == data.y_val).float().mean())
    assert log.val_acc[-1] == pytest.approx(expected_val)
    assert log.val_attn_entropy[-1] == pytest.approx(attention_entropy(reference), abs=1e-5)


def test_runs_trained_together_equal_the_same_runs_trained_alone():
    settings = dict(eval_every=10, lr=3e-3, width=32, layers=1, batch_size=32, progress=False)
    runs = [GrokkingRun(make_grokking_data(11, 0.5, 0.0, seed=1), weight_decay=0.0, seed=1, num_steps=20),
            GrokkingRun(make_grokking_data(11, 0.5, 0.2, seed=2), weight_decay=5.0, seed=2, num_steps=40)]
    together = train_grokking_runs(runs, **settings)
    for run, (model, log) in zip(runs, together):
        alone_model, alone = train_grokking(run.data, num_steps=run.num_steps, weight_decay=run.weight_decay,
                                            seed=run.seed, **settings)
        assert log.step == alone.step == list(range(10, run.num_steps + 1, 10))
        for key in ("train_acc", "val_acc", "param_norm", "val_attn_entropy"):
            assert np.allclose(log[key], alone[key], atol=1e-4), key
        for (name, a), b in zip(model.named_parameters(), alone_model.parameters()):
            assert torch.allclose(a, b, atol=1e-5), name
    assert "train_acc_mislabeled" in together[1][1] and "train_acc_mislabeled" not in together[0][1]


def test_a_run_that_reaches_its_target_leaves_the_group_and_the_others_go_on():
    runs = [GrokkingRun(make_grokking_data(11, 0.5, 0.0, seed=0), stop_at_val_acc=0.0),
            GrokkingRun(make_grokking_data(11, 0.5, 0.0, seed=1))]
    (_, stopped), (_, full) = train_grokking_runs(runs, num_steps=30, eval_every=10, width=16, heads=2, layers=1,
                                                  batch_size=32, progress=False)
    assert stopped.step == [10] and full.step == [10, 20, 30]


def test_runs_with_data_of_different_sizes_are_refused():
    runs = [GrokkingRun(make_grokking_data(11, 0.5)), GrokkingRun(make_grokking_data(13, 0.5))]
    with pytest.raises(ValueError, match="same sizes"):
        train_grokking_runs(runs, num_steps=1, width=16, progress=False)
