"""Two tasks, one shared trunk: ``MultiTaskLoss`` with PCGrad (projecting conflicting gradients).

What it shows:

* the model of ``multitask_uncertainty.py`` (shared trunk, a classification head and a
  regression head), trained with a *gradient* weighting: ``MultiTaskLoss(losses,
  weighting=PCGrad(tasks, seed=0))`` (Yu et al. 2020, "Gradient Surgery for Multi-Task Learning");
* the training call: ``out = mtl.backward(preds, targets, model.trunk.parameters())`` computes
  each task's gradient over the *shared* parameters, projects every task gradient off the
  gradients it conflicts with (negative dot product), writes the sum into ``.grad`` and gives
  the heads the gradient of their own task; then ``optimizer.step()``. Calling
  ``mtl(preds, targets).backward()`` instead raises ``TypeError``: a plain total would
  silently skip the projection;
* a diagnostic printed with the losses and weights: the cosine between the two task
  gradients on the trunk (negative: the tasks conflict and PCGrad projects);
* the weighting's state (the generator of its projection orders) is in ``mtl.state_dict()``:
  a resumed run draws the same orders;
* held-out metrics from ``losslab.metrics.for_task("binary")`` and ``for_task("regression")``.

Run::

    python examples/multitask_pcgrad.py            # 600 steps
    python examples/multitask_pcgrad.py --tiny     # 5 steps (what the tests run)
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, Optional

import torch
from torch import Tensor, nn

import losslab
from losslab.metrics import for_task
from losslab.multitask import MultiTaskLoss, PCGrad


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


def gradient_cosine(
    mtl: MultiTaskLoss,
    preds: dict[str, Tensor],
    targets: dict[str, Tensor],
    shared: Sequence[Tensor],
) -> float:
    """Cosine between the two tasks' gradients over the shared parameters (a diagnostic)."""
    losses = mtl.task_losses(preds, targets)
    grads = [
        torch.cat([g.flatten() for g in torch.autograd.grad(loss, shared, retain_graph=True)])
        for loss in losses.values()
    ]
    return float(torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0))


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--steps", type=int, default=None, help="optimizer steps (default 600; 5 with --tiny)"
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument(
        "--reduction",
        choices=["sum", "mean"],
        default="sum",
        help="sum (the paper) or mean of the projected task gradients",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="5 steps on 80 samples (tests)")
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
    mtl = MultiTaskLoss(
        {"cls": losslab.BCEWithLogitsLoss(), "reg": losslab.MSELoss()},
        weighting=PCGrad(tasks, reduction=args.reduction, seed=args.seed),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    shared = list(model.trunk.parameters())

    batches = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(n_train, generator=batches)
    history: list[dict[str, float]] = []
    cosines: list[float] = []
    for step in range(1, args.steps + 1):
        start = (step - 1) * args.batch_size % n_train
        if start + args.batch_size > n_train:  # a new epoch: reshuffle
            order = torch.randperm(n_train, generator=batches)
        index = order[start : start + args.batch_size]
        preds = model(x[index])
        targets = {t: y[t][index] for t in tasks}
        log_now = step == 1 or step % 100 == 0 or step == args.steps
        if log_now:  # before mtl.backward, which frees the graph
            cosines.append(gradient_cosine(mtl, preds, targets, shared))
        optimizer.zero_grad()
        out = mtl.backward(preds, targets, shared)  # a detached LossOutput
        optimizer.step()
        record = out.log_dict(prefix="")
        history.append({**record, **{f"weight/{t}": w for t, w in out.weights.items()}})
        if log_now:
            print(
                f"step {step:4d} | total {record['total']:8.4f} | cls {record['cls']:.4f} "
                f"reg {record['reg']:8.4f} | weights cls {out.weights['cls']:g} reg {out.weights['reg']:g} | "
                f"cos(g_cls, g_reg) {cosines[-1]:+.3f}"
            )

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
    return {
        "history": history,
        "initial": history[0],
        "final": history[-1],
        "weights": mtl.current_weights(),
        "cosines": cosines,
        "metrics": metrics,
        "state_keys": sorted(mtl.state_dict()),
    }


if __name__ == "__main__":
    main()
