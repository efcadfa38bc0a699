"""Grokking on modular arithmetic, with a fixed fraction of mislabeled training examples.

Taught in lesson 03 (grokking with mislabeled data), after a student's grokking notes and Power et al.
2022: the equations ``a + b = c (mod p)`` are split into training and validation
sets; the training examples are served through :class:`~noisylabels.MislabeledDataset`
(a fixed set of mislabels drawn i.i.d. with replacement at construction); a small
transformer (2 layers, width 128, 4 heads) is trained with AdamW, and
:func:`train_grokking` logs train / validation accuracy and loss, the parameter norm
and the attention entropy every few steps.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .noise import MislabeledDataset
from .results import Results
from .training import finish_progress, get_device, progress_bar, seed_everything

__all__ = [
    "ModularArithmetic",
    "make_grokking_data",
    "GrokkingData",
    "GrokkingTransformer",
    "attention_entropy",
    "parameter_norm",
    "train_grokking",
    "train_grokking_runs",
    "GrokkingRun",
    "GrokkingLog",
]

OPERATIONS = {
    "+": lambda a, b, p: (a + b) % p,
    "-": lambda a, b, p: (a - b) % p,
    "*": lambda a, b, p: (a * b) % p,
}


class ModularArithmetic:
    """All ``p * p`` equations ``a op b = c (mod p)`` as a map-style dataset.

    Example ``i`` is ``(tokens, c)`` with ``tokens = [a, op, b, eq]`` (int64, length 4):
    numbers are tokens ``0 .. p-1``, the operation token is ``p`` and ``=`` is ``p + 1``,
    so the vocabulary has ``p + 2`` tokens and there are ``p`` classes. Lesson 03 teaches it.
    """

    def __init__(self, p: int = 97, operation: str = "+"):
        if operation not in OPERATIONS:
            raise ValueError(f"operation must be one of {sorted(OPERATIONS)}, got {operation!r}")
        self.p = p
        self.operation = operation
        a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
        a, b = a.ravel(), b.ravel()
        self.tokens = np.stack([a, np.full_like(a, p), b, np.full_like(a, p + 1)], axis=1).astype(np.int64)
        self.targets = OPERATIONS[operation](a, b, p).astype(np.int64)

    @property
    def vocab_size(self) -> int:
        return self.p + 2

    @property
    def num_classes(self) -> int:
        return self.p

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        return self.tokens[index], self.targets[index]


class _Subset:
    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, np.asarray(indices)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.dataset[int(self.indices[i])]


@dataclass
class GrokkingData:
    """Tensors of one grokking experiment (see :func:`make_grokking_data`).

    ``X_train`` / ``y_noisy`` are what the model trains on (``y_true`` the correct
    answers, ``is_mislabeled`` where they differ); ``X_val`` / ``y_val`` are clean.
    ``train`` is the :class:`~noisylabels.MislabeledDataset` that served the labels.
    Lesson 03 teaches it.
    """

    X_train: torch.Tensor
    y_noisy: torch.Tensor
    y_true: torch.Tensor
    is_mislabeled: np.ndarray
    X_val: torch.Tensor
    y_val: torch.Tensor
    train: MislabeledDataset
    p: int

    @property
    def num_classes(self) -> int:
        return self.p

    @property
    def vocab_size(self) -> int:
        return self.p + 2


def make_grokking_data(p: int = 97, train_fraction: float = 0.4, frac_mislabeled: float = 0.0,
                       operation: str = "+", seed: int = 0) -> GrokkingData:
    """Split the equations ``a op b mod p`` into train / validation and mislabel some training ones.

    A fraction ``train_fraction`` of the ``p * p`` equations (a seeded permutation)
    is for training; they are wrapped in :class:`~noisylabels.MislabeledDataset`
    with ``frac_mislabeled`` (``round(frac_mislabeled * n_train)`` draws with
    replacement, each with a uniformly random answer, fixed from then on). The
    validation equations keep their true answers. Lesson 03 teaches it.
    """
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must lie in (0, 1), got {train_fraction}")
    full = ModularArithmetic(p, operation)
    order = np.random.default_rng(seed).permutation(len(full))
    n_train = int(round(train_fraction * len(full)))
    train_idx, val_idx = order[:n_train], order[n_train:]
    train = MislabeledDataset(_Subset(full, train_idx), frac_mislabeled, num_classes=p, seed=seed + 1)
    return GrokkingData(
        X_train=torch.as_tensor(full.tokens[train_idx]),
        y_noisy=torch.as_tensor(train.noisy_targets()),
        y_true=torch.as_tensor(full.targets[train_idx]),
        is_mislabeled=train.is_mislabeled.copy(),
        X_val=torch.as_tensor(full.tokens[val_idx]),
        y_val=torch.as_tensor(full.targets[val_idx]),
        train=train,
        p=p,
    )


class _Block(nn.Module):
    """Pre-norm transformer block whose attention keeps its weights for inspection."""

    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.drop = nn.Dropout(dropout)
        self.last_attention = None

    def forward(self, x, last_query_only: bool = False):
        """``x`` is ``(n, t, width)``. With ``last_query_only`` only the last position is
        computed (keys and values still come from every position) and ``(n, 1, width)`` is
        returned: the same numbers for that position, a fraction of the work, and no
        attention weights kept."""
        n, t, w = x.shape
        h = self.ln1(x)
        if last_query_only:
            q = F.linear(h[:, -1:], self.qkv.weight[:w], self.qkv.bias[:w])
            k, v = F.linear(h, self.qkv.weight[w:], self.qkv.bias[w:]).split(w, dim=2)
            x = x[:, -1:]
        else:
            q, k, v = self.qkv(h).split(w, dim=2)
        tq = q.shape[1]
        q, k, v = (z.reshape(n, z.shape[1], self.heads, w // self.heads).transpose(1, 2) for z in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(w // self.heads)
        if last_query_only:  # the last position sees every token: no mask
            attn = scores.softmax(-1)
        else:
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
            attn = scores.masked_fill(mask, float("-inf")).softmax(-1)  # (n, heads, t, t), causal
            self.last_attention = attn.detach()
        y = (attn @ v).transpose(1, 2).reshape(n, tq, w)
        x = x + self.drop(self.proj(y))
        return x + self.drop(self.mlp(self.ln2(x)))


class GrokkingTransformer(nn.Module):
    """Decoder-only transformer of the grokking replication: reads ``[a, op, b, =]``
    and predicts ``c`` from the last position. Defaults: 2 layers, width 128, 4 heads.
    Lesson 03 teaches it.
    """

    def __init__(self, vocab_size: int, num_classes: int, width: int = 128, heads: int = 4,
                 layers: int = 2, seq_len: int = 4, dropout: float = 0.0):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.embed = nn.Embedding(vocab_size, width)
        self.pos = nn.Parameter(torch.randn(seq_len, width) * 0.02)
        self.blocks = nn.ModuleList(_Block(width, heads, dropout) for _ in range(layers))
        self.ln = nn.LayerNorm(width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, tokens, keep_attention: bool = True):
        """Logits ``(n, num_classes)`` for ``tokens`` ``(n, t)``. With ``keep_attention=False``
        (used for the training steps) the last block computes only the position that
        predicts, about a third less work, and :meth:`attention_maps` is not updated."""
        x = self.embed(tokens) + self.pos[: tokens.shape[1]]
        for i, block in enumerate(self.blocks):
            x = block(x, last_query_only=not keep_attention and i == len(self.blocks) - 1)
        return self.head(self.ln(x[:, -1]))

    def attention_maps(self):
        """The attention weights of the last forward pass, one ``(n, heads, t, t)`` per layer."""
        return [b.last_attention for b in self.blocks]


def attention_entropy(model: GrokkingTransformer) -> float:
    """Mean entropy (nats) of the attention distributions of the last forward pass.

    Averaged over layers, heads, query positions and examples. The first query
    position can only attend to itself (entropy 0) under the causal mask; it counts too,
    as in the seed's logs. Low entropy: each head looks at few tokens. Lesson 03 teaches it.
    """
    values = []
    for attn in model.attention_maps():
        ent = -(attn * attn.clamp_min(1e-12).log()).sum(-1)  # (n, heads, t)
        values.append(ent.mean())
    return float(torch.stack(values).mean())


def parameter_norm(model: nn.Module) -> float:
    """The L2 norm of all parameters together (weight decay shrinks it; it falls as the model groks).
    Lesson 03 teaches it."""
    return float(torch.sqrt(sum((p.detach() ** 2).sum() for p in model.parameters())))


class GrokkingLog(Results):
    """Lists under ``step``, ``train_acc``, ``train_loss``, ``val_acc``, ``val_loss``,
    ``param_norm``, ``train_attn_entropy``, ``val_attn_entropy``, ``seconds``;
    ``train_acc_clean`` / ``train_acc_mislabeled`` (accuracy on the clean training
    examples and on the mislabeled ones, against the labels trained on) when there
    are mislabels. A :class:`~noisylabels.results.Results`: keys read as attributes too.
    Lesson 03 teaches it.
    """

    def steps_to_val(self, threshold: float = 0.99):
        """First logged step whose validation accuracy reached ``threshold``, else None."""
        return self.first_reached("val_acc", threshold, at="step")


@dataclass
class GrokkingRun:
    """One run of :func:`train_grokking_runs`: its data, weight decay and seed, and when it ends.

    ``num_steps`` (``None``: the group's) is the run's step budget; ``stop_at_val_acc``
    ends it early once validation accuracy reaches it. ``name`` labels it in the progress
    bar. Lesson 03 teaches it.
    """

    data: GrokkingData
    weight_decay: float = 1.0
    seed: int = 0
    num_steps: int | None = None
    stop_at_val_acc: float | None = None
    model: GrokkingTransformer | None = None
    name: str | None = None


def _stack(models):
    """The parameters of ``models`` (same shapes) stacked along a new first axis, by name."""
    states = [dict(m.named_parameters()) for m in models]
    return {k: torch.stack([s[k].detach() for s in states]).clone() for k in states[0]}


def _linear(x, weight, bias):
    """``x @ weight.T + bias`` for each run: ``x`` is ``(G, ..., in)``, ``weight`` ``(G, out, in)``."""
    shape = x.shape
    out = torch.baddbmm(bias.unsqueeze(1), x.reshape(shape[0], -1, shape[-1]), weight.transpose(1, 2))
    return out.reshape(*shape[:-1], weight.shape[1])


def _layer_norm(x, weight, bias):
    view = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
    return F.layer_norm(x, x.shape[-1:]) * weight.view(view) + bias.view(view)


def _grouped_forward(params, tokens, heads, layers, dropout=0.0, training=False, entropy=False):
    """Logits ``(G, n, num_classes)`` of G stacked :class:`GrokkingTransformer` s on ``tokens`` ``(G, n, t)``.

    The same computation as :meth:`GrokkingTransformer.forward`, one run per leading index.
    The last block computes only the position that predicts (its attention weights for
    every position too when ``entropy``). With ``entropy`` also returns each run's
    :func:`attention_entropy` ``(G,)``.
    """
    G, n, t = tokens.shape
    x = params["embed.weight"][torch.arange(G, device=tokens.device)[:, None, None], tokens]
    x = x + params["pos"][:, None, :t]
    width = x.shape[-1]
    d = width // heads
    entropies = []
    for i in range(layers):
        p = {k[len(f"blocks.{i}."):]: v for k, v in params.items() if k.startswith(f"blocks.{i}.")}
        last = i == layers - 1
        h = _layer_norm(x, p["ln1.weight"], p["ln1.bias"])
        kv_w, kv_b = p["qkv.weight"][:, width:], p["qkv.bias"][:, width:]
        k, v = _linear(h, kv_w, kv_b).split(width, dim=-1)
        full_queries = not last or entropy
        q = _linear(h if full_queries else h[:, :, -1:], p["qkv.weight"][:, :width], p["qkv.bias"][:, :width])
        tq = q.shape[2]
        # four tokens: products and sums over the head's features beat many tiny batched matmuls
        q, k, v = (z.reshape(G, n, z.shape[2], heads, d) for z in (q, k, v))
        scores = (q[:, :, :, None] * k[:, :, None]).sum(-1) / math.sqrt(d)  # (G, n, tq, t, heads)
        if tq > 1:
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(mask[:, :, None], float("-inf"))
        attn = scores.softmax(3)
        if entropy:
            entropies.append(-(attn * attn.clamp_min(1e-12).log()).sum(3).mean((1, 2, 3)))
        if last:  # only the predicting position goes on
            attn, x = attn[:, :, -1:], x[:, :, -1:]
        y = (attn[..., None] * v[:, :, None]).sum(3).reshape(G, n, x.shape[2], width)
        x = x + F.dropout(_linear(y, p["proj.weight"], p["proj.bias"]), dropout, training)
        hidden = F.gelu(_linear(_layer_norm(x, p["ln2.weight"], p["ln2.bias"]), p["mlp.0.weight"], p["mlp.0.bias"]))
        x = x + F.dropout(_linear(hidden, p["mlp.2.weight"], p["mlp.2.bias"]), dropout, training)
    x = _layer_norm(x[:, :, -1], params["ln.weight"], params["ln.bias"])
    logits = _linear(x, params["head.weight"], params["head.bias"])
    return (logits, torch.stack(entropies).mean(0)) if entropy else logits


@torch.no_grad()
def _grouped_eval(params, X, y, heads, layers, chunk):
    """Per-example losses and correctness ``(G, n)`` and the attention entropy ``(G,)`` on ``X`` ``(G, n, t)``."""
    logits, ent = [], []
    for i in range(0, X.shape[1], chunk):
        out, e = _grouped_forward(params, X[:, i:i + chunk], heads, layers, entropy=True)
        logits.append(out)
        ent.append(e * X[:, i:i + chunk].shape[1])
    logits = torch.cat(logits, 1)
    losses = F.cross_entropy(logits.transpose(1, 2), y, reduction="none")
    return losses, logits.argmax(2) == y, sum(ent) / X.shape[1]


def train_grokking_runs(
    runs,
    *,
    num_steps: int = 3000,
    lr: float = 1e-3,
    betas=(0.9, 0.98),
    eps: float = 1e-8,
    batch_size: int = 512,
    warmup_steps: int = 10,
    eval_every: int = 100,
    width: int = 128,
    heads: int = 4,
    layers: int = 2,
    dropout: float = 0.0,
    device=None,
    progress: bool = True,
    record_example_losses: bool = False,
    desc: str | None = None,
):
    """Train several grokking runs side by side as one stacked model; return ``[(model, log), ...]``.

    Each :class:`GrokkingRun` keeps its own data, seed (initial weights, batch order),
    weight decay and budget: the runs share only the architecture and the optimizer
    settings, so one run's numbers are those :func:`train_grokking` gives it alone (up to
    float rounding). Stacking their weights turns many small matrix products into a few
    larger ones; a run that ends (budget or ``stop_at_val_acc``) leaves the stack. AdamW
    (decoupled weight decay, as ``torch.optim.AdamW``) with a linear warm-up over
    ``warmup_steps``. ``seconds`` in the logs counts from the start of the group.
    Lesson 03 teaches it.
    """
    runs = list(runs)
    if not runs:
        raise ValueError("train_grokking_runs needs at least one GrokkingRun")
    sizes = {(len(r.data.X_train), len(r.data.X_val), r.data.vocab_size, r.data.num_classes) for r in runs}
    if len(sizes) > 1:
        raise ValueError(f"runs trained together need data of the same sizes, got {sorted(sizes)}")
    dev = get_device(device)
    budgets = [r.num_steps or num_steps for r in runs]
    models = []
    for r in runs:
        seed_everything(r.seed)
        models.append(r.model if r.model is not None else
                      GrokkingTransformer(r.data.vocab_size, r.data.num_classes, width, heads, layers, dropout=dropout))
    layers, heads = len(models[0].blocks), models[0].blocks[0].heads
    params = {k: v.to(dev).requires_grad_() for k, v in _stack(models).items()}
    exp_avg = {k: torch.zeros_like(v) for k, v in params.items()}
    exp_avg_sq = {k: torch.zeros_like(v) for k, v in params.items()}
    X = torch.stack([r.data.X_train for r in runs]).to(dev)
    y = torch.stack([r.data.y_noisy for r in runs]).to(dev)
    X_val = torch.stack([r.data.X_val for r in runs]).to(dev)
    y_val = torch.stack([r.data.y_val for r in runs]).to(dev)
    mislabeled = torch.as_tensor(np.stack([r.data.is_mislabeled for r in runs]), device=dev)
    decay = torch.tensor([float(r.weight_decay) for r in runs], device=dev)
    keys = ["step", "train_acc", "train_loss", "val_acc", "val_loss", "param_norm",
            "train_attn_entropy", "val_attn_entropy", "seconds"]
    logs = []
    for r in runs:
        extra = ["train_acc_clean", "train_acc_mislabeled"] if r.data.is_mislabeled.any() else []
        logs.append(GrokkingLog({k: [] for k in keys + extra}))
    example_losses = [[] for _ in runs]
    generators = [torch.Generator().manual_seed(r.seed) for r in runs]
    orders = [torch.randperm(X.shape[1], generator=g) for g in generators]
    positions = [0] * len(runs)
    active = list(range(len(runs)))  # run index of each row of the stack
    n_train = X.shape[1]
    chunk = max(256, 8192 // len(runs))

    bar = progress_bar(max(budgets), desc or "grokking", progress, unit="step", mininterval=1.0)
    stopped = []
    start = time.perf_counter()
    for step in range(1, max(budgets) + 1):
        rows = []
        for j in active:
            if positions[j] + batch_size > n_train:
                orders[j], positions[j] = torch.randperm(n_train, generator=generators[j]), 0
            rows.append(orders[j][positions[j]:positions[j] + batch_size])
            positions[j] += batch_size
        idx = torch.stack(rows).to(dev)
        g_idx = torch.arange(len(active), device=dev)[:, None]
        logits = _grouped_forward(params, X[g_idx, idx], heads, layers, dropout, training=True)
        losses = F.cross_entropy(logits.transpose(1, 2), y[g_idx, idx], reduction="none")
        grads = torch.autograd.grad(losses.mean(1).sum(), list(params.values()))
        step_lr = lr * min(1.0, step / max(1, warmup_steps))
        c1, c2 = 1 - betas[0] ** step, 1 - betas[1] ** step
        with torch.no_grad():
            for (k, p), grad in zip(params.items(), grads):
                view = (-1,) + (1,) * (p.dim() - 1)
                p.mul_(1 - step_lr * decay.view(view))
                exp_avg[k].lerp_(grad, 1 - betas[0])
                exp_avg_sq[k].mul_(betas[1]).addcmul_(grad, grad, value=1 - betas[1])
                p.addcdiv_(exp_avg[k], (exp_avg_sq[k] / c2).sqrt_().add_(eps), value=-step_lr / c1)
        bar.update(1)
        due = [step % eval_every == 0 or step == budgets[j] for j in active]
        if not any(due):
            continue
        tr_losses, tr_correct, tr_ent = _grouped_eval(params, X, y, heads, layers, chunk)
        va_losses, va_correct, va_ent = _grouped_eval(params, X_val, y_val, heads, layers, chunk)
        norms = torch.sqrt(sum((p.detach() ** 2).flatten(1).sum(1) for p in params.values()))
        done = []
        for row, j in enumerate(active):
            if not due[row]:
                continue
            log = logs[j]
            log["step"].append(step)
            log["train_acc"].append(tr_correct[row].float().mean().item())
            log["train_loss"].append(tr_losses[row].mean().item())
            log["val_acc"].append(va_correct[row].float().mean().item())
            log["val_loss"].append(va_losses[row].mean().item())
            log["param_norm"].append(norms[row].item())
            log["train_attn_entropy"].append(tr_ent[row].item())
            log["val_attn_entropy"].append(va_ent[row].item())
            log["seconds"].append(time.perf_counter() - start)
            if "train_acc_clean" in log:
                log["train_acc_clean"].append(tr_correct[row][~mislabeled[row]].float().mean().item())
                log["train_acc_mislabeled"].append(tr_correct[row][mislabeled[row]].float().mean().item())
            if record_example_losses:
                example_losses[j].append(tr_losses[row].cpu().numpy())
            if not np.isfinite(log["train_loss"][-1]):
                bar.close()
                raise FloatingPointError(f"training diverged at step {step} ({runs[j].name or f'run {j}'}); lower lr")
            target = runs[j].stop_at_val_acc
            if step == budgets[j] or (target is not None and log["val_acc"][-1] >= target):
                done.append(row)
                if step < budgets[j]:
                    who = f" ({runs[j].name or f'run {j}'}, step {step})" if len(runs) > 1 else ""
                    stopped.append(f"val acc {target:g} reached{who}")
        bar.set_postfix(val=" ".join(f"{logs[j]['val_acc'][-1]:.2f}" for j in active if logs[j]["step"]),
                        refresh=False)
        if done:
            for row in done:
                state = {k: v[row].detach().clone().cpu() for k, v in params.items()}
                models[active[row]].load_state_dict(state, strict=False)
            keep = torch.tensor([row for row in range(len(active)) if row not in done], dtype=torch.long, device=dev)
            active = [j for row, j in enumerate(active) if row not in done]
            if not active:
                break
            params = {k: v.detach()[keep].requires_grad_() for k, v in params.items()}
            exp_avg = {k: v[keep] for k, v in exp_avg.items()}
            exp_avg_sq = {k: v[keep] for k, v in exp_avg_sq.items()}
            X, y, X_val, y_val = X[keep], y[keep], X_val[keep], y_val[keep]
            mislabeled, decay = mislabeled[keep], decay[keep]
    finish_progress(bar, ("stopped: " + "; ".join(stopped)) if stopped else None)
    for j, log in enumerate(logs):
        if record_example_losses:
            log["example_losses"] = np.stack(example_losses[j])
    return [(models[j].to(dev), logs[j]) for j in range(len(runs))]


def train_grokking(
    data: GrokkingData,
    *,
    num_steps: int = 3000,
    lr: float = 1e-3,
    weight_decay: float = 1.0,
    betas=(0.9, 0.98),
    batch_size: int = 512,
    warmup_steps: int = 10,
    eval_every: int = 100,
    stop_at_val_acc: float | None = None,
    width: int = 128,
    heads: int = 4,
    layers: int = 2,
    dropout: float = 0.0,
    model: GrokkingTransformer | None = None,
    seed: int = 0,
    device=None,
    progress: bool = True,
    record_example_losses: bool = False,
    desc: str | None = None,
):
    """Train the grokking transformer for ``num_steps`` AdamW steps; return ``(model, log)``.

    Mini-batches of ``batch_size`` are drawn from the (noisy) training labels, a fresh
    shuffle every pass. Every ``eval_every`` steps (and at the last step) the whole
    training set (against the labels trained on) and validation set are evaluated,
    and the parameter norm and the attention entropy are logged in a
    :class:`GrokkingLog`. ``stop_at_val_acc`` ends training early once validation
    accuracy reaches it. With ``record_example_losses`` the log also holds
    ``example_losses`` (array ``(evaluations, n_train)``). One run of
    :func:`train_grokking_runs`. Lesson 03 teaches it.
    """
    run = GrokkingRun(data, weight_decay=weight_decay, seed=seed, num_steps=num_steps,
                      stop_at_val_acc=stop_at_val_acc, model=model, name=desc)
    [(model, log)] = train_grokking_runs(
        [run], num_steps=num_steps, lr=lr, betas=betas, batch_size=batch_size, warmup_steps=warmup_steps,
        eval_every=eval_every, width=width, heads=heads, layers=layers, dropout=dropout, device=device,
        progress=progress, record_example_losses=record_example_losses, desc=desc)
    return model, log
