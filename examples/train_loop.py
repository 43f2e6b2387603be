"""A plain PyTorch training loop with a composed loss, a parameter regularizer and streaming metrics.

What it shows:

* a loss built with losslab's algebra, ``0.5 * SigmoidFocalLoss + 0.5 * BCEWithLogitsLoss``,
  plus ``L1Penalty`` restricted by its parameter ``filter`` to the first layer (a sparse
  input layer: an L1 penalty as feature selection). The sum is one ``nn.Module``; calling it
  returns the total, ``loss.evaluate(...)`` also returns every unweighted component;
* logging those components, averaged over each epoch;
* validation metrics that stream batch by batch: ``losslab.metrics.for_task("binary")``
  (accuracy, AUROC, average precision, F1, MCC, calibration error, best F1, ...) and a
  validation loss made exact over batches of any size with ``metric_from_batch_fn``.

Data: scikit-learn's breast-cancer set (569 samples, 30 features; shipped with
scikit-learn, nothing is downloaded), standardized, split 80/20 with a fixed seed.

Run::

    python examples/train_loop.py                 # 300 steps, a few seconds on a laptop CPU
    python examples/train_loop.py --steps 1000 --l1 1e-3
    python examples/train_loop.py --tiny          # 8 steps (2 epochs) on 64 samples (the tests)
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, Optional

import torch
from sklearn.datasets import load_breast_cancer
from torch import Tensor, nn

import losslab
from losslab.metrics import for_task, metric_from_batch_fn


def load_data(seed: int, limit: Optional[int] = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Standardized breast-cancer features and {0, 1} labels, split 80/20 (train, val)."""
    x_np, y_np = load_breast_cancer(return_X_y=True)
    x = torch.tensor(x_np, dtype=torch.float32)
    y = torch.tensor(y_np, dtype=torch.float32)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    if limit is not None:
        order = order[:limit]
    x, y = x[order], y[order]
    n_train = int(0.8 * len(x))
    mean, std = x[:n_train].mean(0), x[:n_train].std(0)  # statistics of the training split only
    x = (x - mean) / std
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def make_model(n_features: int, hidden: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(n_features, hidden),  # "0.weight": the input layer the L1 penalty covers
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 1),
    )


def input_layer_only(name: str, param: Tensor) -> bool:
    """Parameter filter of the penalty: only the first layer's weight matrix.

    A module-level function rather than a lambda, so the loss can be pickled and deep-copied.
    """
    return name == "0.weight"


def validation_bce(logits: Tensor, target: Tensor) -> Tensor:
    """Mean BCE of a batch; ``metric_from_batch_fn`` turns it into an exact streaming mean."""
    return losslab.functional.bce_with_logits_loss(logits, target.float())


def build_loss(model: nn.Module, *, gamma: float, l1: float) -> losslab.WeightedSum:
    focal = losslab.SigmoidFocalLoss(alpha=0.25, gamma=gamma)
    bce = losslab.BCEWithLogitsLoss()
    sparsity = losslab.L1Penalty(model, filter=input_layer_only)
    # One flat WeightedSum with the terms named "focal", "bce" and "l1". The penalty takes
    # no input: the sum calls it without (logits, target).
    return 0.5 * focal + 0.5 * bce + l1 * sparsity


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--steps", type=int, default=None, help="optimizer steps (default 300; 8 with --tiny)"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--gamma", type=float, default=2.0, help="focusing parameter of focal")
    parser.add_argument("--l1", type=float, default=1e-3, help="weight of the L1 penalty")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="8 steps on 64 samples (tests)")
    args = parser.parse_args(argv)
    limit = None
    if args.tiny:
        args.batch_size, args.hidden, limit = 16, 8, 64
    if args.steps is None:
        args.steps = 8 if args.tiny else 300

    torch.manual_seed(args.seed)
    x_train, y_train, x_val, y_val = load_data(args.seed, limit)
    model = make_model(x_train.shape[1], args.hidden)
    loss_fn = build_loss(model, gamma=args.gamma, l1=args.l1)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    metrics = for_task("binary", threshold=0.5)  # from logits; labels are integers
    val_loss = metric_from_batch_fn(validation_bce, higher_is_better=False)
    # to_spec() refuses this loss (a callable filter has no spec form): print the weights.
    print("loss: " + " + ".join(f"{w:g}*{name}" for name, w in loss_fn.term_weights.items()))
    print(f"penalized parameters: {loss_fn.term_modules['l1'].parameter_names}")

    batches = torch.Generator().manual_seed(args.seed)
    history: list[dict[str, float]] = []
    step, epoch = 0, 0
    while step < args.steps:
        epoch += 1
        model.train()
        sums: dict[str, float] = {}
        seen = 0
        for index in torch.randperm(len(x_train), generator=batches).split(args.batch_size):
            if step == args.steps:
                break
            out = loss_fn.evaluate(model(x_train[index]).squeeze(1), y_train[index])
            optimizer.zero_grad()
            out.total.backward()
            optimizer.step()
            step += 1
            # Epoch averages weighted by batch size (the last batch may be smaller).
            for key, value in out.log_dict().items():
                sums[key] = sums.get(key, 0.0) + value * len(index)
            seen += len(index)
        epoch_losses = {key: value / seen for key, value in sums.items()}
        history.append(epoch_losses)

        model.eval()
        with torch.no_grad():
            for index in torch.arange(len(x_val)).split(args.batch_size):
                logits = model(x_val[index]).squeeze(1)
                metrics.update(logits, y_val[index].long())
                val_loss.update(logits, y_val[index])
        scores = {key: float(value) for key, value in metrics.compute().items()}
        scores["bce"] = float(val_loss.compute())
        metrics.reset()
        val_loss.reset()
        if epoch == 1 or step == args.steps or epoch % 10 == 0:
            train = " ".join(f"{k.removeprefix('loss/')} {v:.4f}" for k, v in epoch_losses.items())
            print(
                f"epoch {epoch:3d} step {step:4d} | train {train} | val bce {scores['bce']:.4f} "
                f"auroc {scores['auroc']:.4f} f1 {scores['f1']:.4f} mcc {scores['mcc']:.4f}"
            )

    return {
        "steps": step,
        "epochs": epoch,
        "initial_losses": history[0],
        "final_losses": history[-1],
        "metrics": scores,
        "penalized": loss_fn.term_modules["l1"].parameter_names,
    }


if __name__ == "__main__":
    main()
