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


@torch.no_grad()
def _eval(model, X, y, batch_size=4096):
    model.eval()
    logits, ent = [], []
    for i in range(0, len(X), batch_size):
        logits.append(model(X[i:i + batch_size]))
        ent.append(attention_entropy(model) * len(X[i:i + batch_size]))
    logits = torch.cat(logits)
    losses = F.cross_entropy(logits, y, reduction="none")
    correct = logits.argmax(1) == y
    model.train()
    return losses, correct, sum(ent) / len(X)


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
    ``example_losses`` (array ``(evaluations, n_train)``). Lesson 03 teaches it.
    """
    seed_everything(seed)
    dev = get_device(device)
    if model is None:
        model = GrokkingTransformer(data.vocab_size, data.num_classes, width, heads, layers, dropout=dropout)
    model.to(dev)
    X, y = data.X_train.to(dev), data.y_noisy.to(dev)
    X_val, y_val = data.X_val.to(dev), data.y_val.to(dev)
    mislabeled = torch.as_tensor(data.is_mislabeled, device=dev)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, warmup_steps)))
    keys = ["step", "train_acc", "train_loss", "val_acc", "val_loss", "param_norm",
            "train_attn_entropy", "val_attn_entropy", "seconds"]
    if mislabeled.any():
        keys += ["train_acc_clean", "train_acc_mislabeled"]
    log = GrokkingLog({k: [] for k in keys})
    example_losses = []
    generator = torch.Generator().manual_seed(seed)
    order, pos = torch.randperm(len(X), generator=generator), 0

    bar = progress_bar(num_steps, desc or "grokking", progress, unit="step", mininterval=1.0)
    stopped = None
    start = time.perf_counter()
    model.train()
    for step in range(1, num_steps + 1):
        if pos + batch_size > len(X):
            order, pos = torch.randperm(len(X), generator=generator), 0
        idx = order[pos:pos + batch_size].to(dev)
        pos += batch_size
        loss = F.cross_entropy(model(X[idx], keep_attention=False), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.update(1)
        if step % eval_every == 0 or step == num_steps:
            tr_losses, tr_correct, tr_ent = _eval(model, X, y)
            va_losses, va_correct, va_ent = _eval(model, X_val, y_val)
            log["step"].append(step)
            log["train_acc"].append(tr_correct.float().mean().item())
            log["train_loss"].append(tr_losses.mean().item())
            log["val_acc"].append(va_correct.float().mean().item())
            log["val_loss"].append(va_losses.mean().item())
            log["param_norm"].append(parameter_norm(model))
            log["train_attn_entropy"].append(tr_ent)
            log["val_attn_entropy"].append(va_ent)
            log["seconds"].append(time.perf_counter() - start)
            if "train_acc_clean" in log:
                log["train_acc_clean"].append(tr_correct[~mislabeled].float().mean().item())
                log["train_acc_mislabeled"].append(tr_correct[mislabeled].float().mean().item())
            if record_example_losses:
                example_losses.append(tr_losses.cpu().numpy())
            bar.set_postfix(train=f"{log['train_acc'][-1]:.2f}", val=f"{log['val_acc'][-1]:.2f}", refresh=False)
            if not np.isfinite(log["train_loss"][-1]):
                bar.close()
                raise FloatingPointError(f"training diverged at step {step}; lower lr")
            if stop_at_val_acc is not None and log["val_acc"][-1] >= stop_at_val_acc:
                if step < num_steps:
                    stopped = f"stopped: val acc {stop_at_val_acc:g} reached"
                break
    finish_progress(bar, stopped)
    if record_example_losses:
        log["example_losses"] = np.stack(example_losses)
    return model, log
