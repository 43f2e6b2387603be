"""Two tasks, one shared trunk: ``MultiTaskLoss`` with learned uncertainty weights (Kendall et al.).

What it shows:

* a model with a shared trunk and two heads: binary classification (BCE from logits) and
  regression (MSE) whose loss is a few hundred times larger at the start: with fixed equal
  weights the regression task would dominate the trunk's gradient;
* ``losslab.MultiTaskLoss({"cls": BCEWithLogitsLoss(), "reg": MSELoss()},
  weighting=UncertaintyWeighting(tasks))``: each task :math:`i` gets a learned log-variance
  :math:`s_i` and the total :math:`\\sum_i \\tfrac12 e^{-s_i} L_i + \\tfrac12 s_i`. The
  :math:`s_i` are parameters of the MultiTaskLoss, so ``mtl.parameters()`` goes into the optimizer;
* ``mtl.evaluate(...)`` gives the per-task losses (plus the ``uncertainty_regularizer``
  component) and the weights in use; they are printed as training goes. The total may become
  negative (the regularizer :math:`\\tfrac12 s_i` is unbounded below): compare the task losses,
  not totals. ``UncertaintyWeighting(tasks, positive=True)`` is the bounded variant;
* held-out metrics from ``losslab.metrics.for_task("binary")`` and ``for_task("regression")``.

Run::

    python examples/multitask_uncertainty.py            # 600 steps
    python examples/multitask_uncertainty.py --positive # log(1 + sigma^2) regularizer
    python examples/multitask_uncertainty.py --tiny     # 5 full-batch steps (what the tests run)
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, Optional

import torch
from torch import Tensor, nn

import losslab
from losslab.metrics import for_task
from losslab.multitask import MultiTaskLoss, UncertaintyWeighting


def make_data(n: int, n_features: int, seed: int) -> tuple[Tensor, dict[str, Tensor]]:
    """Features and two targets from one latent structure: a class label and a large-scale value."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n_features, generator=g)
    w_cls = torch.randn(n_features, generator=g)
    w_reg = torch.randn(n_features, generator=g)
    logit = x @ w_cls + 0.5 * torch.randn(n, generator=g)
    value = 10.0 * (x @ w_reg / n_features**0.5 + torch.sin(2.0 * x[:, 0]))
    value = value + 2.0 * torch.randn(n, generator=g)
    return x, {"cls": (logit > 0).float(), "reg": value}


class TwoTaskNet(nn.Module):
    def __init__(self, n_features: int, hidden: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.heads = nn.ModuleDict({"cls": nn.Linear(hidden, 1), "reg": nn.Linear(hidden, 1)})

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        z = self.trunk(x)
        return {task: head(z).squeeze(1) for task, head in self.heads.items()}


def describe(out: losslab.LossOutput, weights: dict[str, float]) -> str:
    c = out.log_dict(prefix="")  # detached floats, one host sync
    return (
        f"total {c['total']:8.4f} | cls {c['cls']:.4f} reg {c['reg']:8.4f} | "
        f"weights cls {weights['cls']:.4f} reg {weights['reg']:.5f}"
    )


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--steps", type=int, default=None, help="optimizer steps (default 600; 5 with --tiny)"
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weighting-lr", type=float, default=3e-2, help="lr of the log-variances")
    parser.add_argument("--positive", action="store_true", help="log(1 + sigma^2) regularizer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="5 full-batch steps (tests)")
    args = parser.parse_args(argv)
    n = 1280
    if args.tiny:
        args.batch_size, args.hidden, n = 64, 16, 80
    if args.steps is None:
        args.steps = 5 if args.tiny else 600

    torch.manual_seed(args.seed)
    x, y = make_data(n, 8, args.seed)
    n_train = int(0.8 * n)
    model = TwoTaskNet(x.shape[1], args.hidden)
    tasks = ["cls", "reg"]
    weighting = UncertaintyWeighting(tasks, positive=args.positive)
    mtl = MultiTaskLoss(
        {"cls": losslab.BCEWithLogitsLoss(), "reg": losslab.MSELoss()}, weighting=weighting
    )
    # The learned log-variances are parameters of `mtl`: without them in the optimizer the
    # weights would stay at their initial value. Adam moves each parameter by about `lr` per
    # step; a larger rate for the two log-variances lets the weights settle within ~100 steps.
    optimizer = torch.optim.Adam(
        [
            {"params": model.parameters()},
            {"params": mtl.parameters(), "lr": args.weighting_lr},
        ],
        lr=args.lr,
    )

    batches = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(n_train, generator=batches)
    history: list[dict[str, float]] = []
    for step in range(1, args.steps + 1):
        start = (step - 1) * args.batch_size % n_train
        if start + args.batch_size > n_train:  # a new epoch: reshuffle
            order = torch.randperm(n_train, generator=batches)
        index = order[start : start + args.batch_size]
        out = mtl.evaluate(model(x[index]), {t: y[t][index] for t in tasks})
        optimizer.zero_grad()
        out.total.backward()
        optimizer.step()
        weights = mtl.current_weights()
        history.append({**out.log_dict(prefix=""), **{f"weight/{t}": weights[t] for t in tasks}})
        if step == 1 or step % 100 == 0 or step == args.steps:
            print(f"step {step:4d} | {describe(out, weights)}")

    cls_metrics, reg_metrics = for_task("binary"), for_task("regression")
    model.eval()
    with torch.no_grad():
        preds = model(x[n_train:])
        cls_metrics.update(preds["cls"], y["cls"][n_train:].long())
        reg_metrics.update(preds["reg"], y["reg"][n_train:])
    metrics = {
        **{f"cls/{k}": float(v) for k, v in cls_metrics.compute().items()},
        **{f"reg/{k}": float(v) for k, v in reg_metrics.compute().items()},
    }
    print(
        f"held-out: cls accuracy {metrics['cls/accuracy']:.4f} auroc {metrics['cls/auroc']:.4f} | "
        f"reg rmse {metrics['reg/rmse']:.4f} r2 {metrics['reg/r2']:.4f}"
    )
    log_vars = weighting.log_vars.detach()  # s_i = log(sigma_i^2), in task order
    return {
        "history": history,
        "initial": history[0],
        "final": history[-1],
        "weights": mtl.current_weights(),
        "log_vars": dict(zip(tasks, log_vars.tolist())),
        "metrics": metrics,
    }


if __name__ == "__main__":
    main()
