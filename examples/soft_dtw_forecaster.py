"""A small forecaster trained with soft-DTW divergence + MSE on a seasonal series, scored by MASE.

What it shows:

* windows of a synthetic seasonal series (period 12 plus a 6-step harmonic, a slow trend and
  noise) as (history, horizon) pairs: the model sees 48 steps and forecasts the next 24;
* the loss ``(0.5 / horizon) * SoftDTWDivergenceLoss(gamma=1.0) + 0.5 * MSELoss()``: soft-DTW
  compares the *shapes* of forecast and target up to small shifts in time (Cuturi & Blondel
  2017); the divergence form is 0 for equal series and non-negative, and the MSE term anchors
  the forecast in time. Soft-DTW is a sum along the alignment path where MSE is a mean per
  step, hence the division by the horizon. A small ``gamma`` approaches DTW and its many local
  minima (with ``--gamma 0.1 --dtw-weight 1`` training stalls); ``gamma=1`` trains smoothly.
  Both components are logged (``loss.evaluate(...)``);
* evaluation with ``losslab.metrics.for_task("forecasting", m=12)``: MASE against the
  in-sample seasonal naive forecast (``insample=history`` reaches only the metrics that take
  it), sMAPE and WAPE, compared with the seasonal naive forecast itself.

Run::

    python examples/soft_dtw_forecaster.py                 # 400 steps
    python examples/soft_dtw_forecaster.py --gamma 0.1 --dtw-weight 0.8
    python examples/soft_dtw_forecaster.py --dtw-weight 0       # MSE only, for comparison
    python examples/soft_dtw_forecaster.py --tiny          # 5 steps (what the tests run)
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from typing import Any, Optional

import torch
from torch import Tensor, nn

import losslab
from losslab.metrics import for_task

PERIOD = 12


def make_series(length: int, seed: int) -> Tensor:
    """A seasonal series: period 12, a 6-step harmonic with a drifting phase, a trend, noise."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length, dtype=torch.float32)
    phase = 0.5 * torch.sin(2 * math.pi * t / 500)  # slow drift: the harmonic shifts in time
    season = torch.sin(2 * math.pi * t / PERIOD) + 0.6 * torch.sin(2 * math.pi * t / 6 + phase)
    trend = 0.002 * t
    return 10.0 + 2.0 * season + trend + 0.3 * torch.randn(length, generator=g)


def make_windows(series: Tensor, history: int, horizon: int, stride: int) -> tuple[Tensor, Tensor]:
    """All (history, horizon) window pairs: (B, history) and (B, horizon)."""
    windows = series.unfold(0, history + horizon, stride)
    return windows[:, :history], windows[:, history:]


class Forecaster(nn.Module):
    """An MLP on the history, normalized by its last season (scale-free inputs and outputs)."""

    def __init__(self, history: int, horizon: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(history, hidden), nn.ReLU(), nn.Linear(hidden, horizon))

    def forward(self, past: Tensor) -> Tensor:
        level = past[:, -PERIOD:].mean(1, keepdim=True)
        return level + self.net(past - level)


def seasonal_naive(past: Tensor, horizon: int) -> Tensor:
    """Repeat the last season: the baseline MASE is scaled by (in sample)."""
    reps = math.ceil(horizon / PERIOD)
    return past[:, -PERIOD:].repeat(1, reps)[:, :horizon]


def score(preds: Tensor, target: Tensor, past: Tensor) -> dict[str, float]:
    metrics = for_task("forecasting", m=PERIOD)
    metrics.update(preds, target, insample=past)  # `insample` reaches MASE only
    return {name: float(value) for name, value in metrics.compute().items()}


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--steps", type=int, default=None, help="optimizer steps (default 400; 5 with --tiny)"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--history", type=int, default=48)
    parser.add_argument("--horizon", type=int, default=24)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--gamma", type=float, default=1.0, help="soft-DTW smoothing")
    parser.add_argument(
        "--dtw-weight", type=float, default=0.5, help="share of soft-DTW per step (MSE: 1 - it)"
    )
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="5 steps on a short series (tests)")
    args = parser.parse_args(argv)
    length = 2000
    if args.tiny:
        args.batch_size, args.history, args.horizon, args.hidden = 16, 24, 12, 16
        length = 200
    if args.steps is None:
        args.steps = 5 if args.tiny else 400

    torch.manual_seed(args.seed)
    series = make_series(length, args.seed)
    split = int(0.75 * length)  # train on the first 75 % of time, test on the rest
    x_train, y_train = make_windows(series[:split], args.history, args.horizon, stride=1)
    x_test, y_test = make_windows(series[split:], args.history, args.horizon, stride=args.horizon)

    # Soft-DTW sums the cost along an alignment path (about `horizon` cells) where MSE is a
    # mean per step: dividing by the horizon puts the two terms on one scale.
    dtw_weight = round(args.dtw_weight / args.horizon, 6)
    mse_weight = round(1.0 - args.dtw_weight, 6)
    loss_fn = dtw_weight * losslab.SoftDTWDivergenceLoss(gamma=args.gamma) + (
        mse_weight * losslab.MSELoss()
    )
    print(
        f"loss: {loss_fn.to_spec()} | {len(x_train)} training windows, {len(x_test)} test windows"
    )
    model = Forecaster(args.history, args.horizon, args.hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    baseline = score(seasonal_naive(x_test, args.horizon), y_test, x_test)
    print(
        f"seasonal naive: MASE {baseline['mase']:.4f} sMAPE {baseline['smape']:.4f} "
        f"WAPE {baseline['wape']:.4f}"
    )

    batches = torch.Generator().manual_seed(args.seed)
    history: list[dict[str, float]] = []
    for step in range(1, args.steps + 1):
        index = torch.randint(0, len(x_train), (args.batch_size,), generator=batches)
        out = loss_fn.evaluate(model(x_train[index]), y_train[index])
        optimizer.zero_grad()
        out.total.backward()
        optimizer.step()
        history.append(out.log_dict(prefix=""))
        if step == 1 or step % 100 == 0 or step == args.steps:
            with torch.no_grad():
                test = score(model(x_test), y_test, x_test)
            parts = " ".join(f"{k} {v:.4f}" for k, v in history[-1].items())
            print(
                f"step {step:4d} | {parts} | test MASE {test['mase']:.4f} sMAPE {test['smape']:.4f}"
            )

    with torch.no_grad():
        test = score(model(x_test), y_test, x_test)
    return {
        "spec": loss_fn.to_spec(),
        "history": history,
        "initial": history[0],
        "final": history[-1],
        "test": test,
        "seasonal_naive": baseline,
    }


if __name__ == "__main__":
    main()
