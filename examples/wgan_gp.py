"""WGAN-GP on a 2-D mixture of eight Gaussians, with losslab's gradient penalty.

What it shows: the training step of a Wasserstein GAN with gradient penalty (Gulrajani et al.
2017, "Improved Training of Wasserstein GANs"), written as a plain PyTorch loop:

* critic step (``--n-critic`` per generator step): ``critic(fake) - critic(real)`` plus
  ``losslab.GradientPenalty(weight=10)(critic, real, fake)``, which takes the critic's input
  gradient at random interpolates of real and fake samples with ``create_graph=True``, so the
  penalty trains the critic's parameters (a double backward). The interpolation coefficients
  are drawn from a seeded ``torch.Generator`` (``generator=``) for reproducibility;
* generator step: ``-critic(generator(z)).mean()``;
* the critic has no batch normalization (it would mix samples in the per-sample gradient);
* what is printed: the critic's Wasserstein estimate, the penalty, the mean input-gradient norm
  (which the penalty pulls towards 1), and two sample-quality numbers: the median distance of
  generated points to the nearest mode and how many of the eight modes they cover.

Run::

    python examples/wgan_gp.py                # 400 generator steps, 5 critic steps each
    python examples/wgan_gp.py --steps 2000   # sharper modes
    python examples/wgan_gp.py --tiny         # 3 generator steps (what the tests run)
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from typing import Any, Optional

import torch
from torch import Tensor, nn

import losslab

MODES = torch.tensor(
    [[2.0 * math.cos(2 * math.pi * k / 8), 2.0 * math.sin(2 * math.pi * k / 8)] for k in range(8)]
)


def sample_real(n: int, generator: torch.Generator, std: float = 0.05) -> Tensor:
    """n points from the mixture of 8 Gaussians on the circle of radius 2."""
    k = torch.randint(0, 8, (n,), generator=generator)
    return MODES[k] + std * torch.randn(n, 2, generator=generator)


def mlp(n_in: int, n_out: int, hidden: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(n_in, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, n_out),
    )


def input_grad_norm(critic: nn.Module, x: Tensor) -> float:
    """Mean ||grad_x critic(x)|| over a batch (a diagnostic; no graph kept)."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x)
    return float(grad.norm(dim=1).mean())


def sample_quality(fake: Tensor, std: float = 0.05) -> tuple[float, int]:
    """Median distance to the nearest mode, and the number of modes that got a nearby sample."""
    dist = torch.cdist(fake, MODES)  # (n, 8)
    nearest, which = dist.min(dim=1)
    covered = which[nearest < 4 * std].unique().numel()
    return float(nearest.median()), int(covered)


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--steps", type=int, default=None, help="generator steps (default 400; 3 with --tiny)"
    )
    parser.add_argument("--n-critic", type=int, default=5, help="critic steps per generator step")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--gp-weight", type=float, default=10.0, help="lambda of the penalty")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="3 generator steps (tests)")
    args = parser.parse_args(argv)
    if args.tiny:
        args.n_critic, args.batch_size, args.hidden = 2, 32, 16
    if args.steps is None:
        args.steps = 3 if args.tiny else 400

    torch.manual_seed(args.seed)
    data = torch.Generator().manual_seed(args.seed)
    noise = torch.Generator().manual_seed(args.seed + 1)
    alphas = torch.Generator().manual_seed(args.seed + 2)  # the penalty's interpolation points
    generator = mlp(2, 2, args.hidden)
    critic = mlp(2, 1, args.hidden)
    # Adam with beta1 = 0 and beta2 = 0.9, as in the WGAN-GP paper.
    opt_g = torch.optim.Adam(generator.parameters(), lr=args.lr, betas=(0.0, 0.9))
    opt_c = torch.optim.Adam(critic.parameters(), lr=args.lr, betas=(0.0, 0.9))
    penalty_fn = losslab.GradientPenalty(weight=args.gp_weight)

    def fake_batch(n: int) -> Tensor:
        return generator(torch.randn(n, 2, generator=noise))

    start_distance, start_modes = sample_quality(fake_batch(1024).detach())
    print(f"start: distance to nearest mode {start_distance:.3f}, modes covered {start_modes}/8")

    history: list[dict[str, float]] = []
    for step in range(1, args.steps + 1):
        for _ in range(args.n_critic):
            real = sample_real(args.batch_size, data)
            fake = fake_batch(args.batch_size).detach()  # the critic step does not train G
            wasserstein = critic(real).mean() - critic(fake).mean()
            penalty = penalty_fn(critic, real, fake, generator=alphas)
            critic_loss = -wasserstein + penalty
            opt_c.zero_grad()
            critic_loss.backward()
            opt_c.step()

        generator_loss = -critic(fake_batch(args.batch_size)).mean()
        opt_g.zero_grad()
        generator_loss.backward()
        opt_g.step()

        record = {
            "wasserstein": wasserstein.item(),
            "penalty": penalty.item(),
            "critic_loss": critic_loss.item(),
            "generator_loss": generator_loss.item(),
        }
        history.append(record)
        if step == 1 or step % 100 == 0 or step == args.steps:
            grad_norm = input_grad_norm(critic, real)
            distance, modes = sample_quality(fake_batch(1024).detach())
            print(
                f"step {step:4d} | W estimate {record['wasserstein']:.4f} "
                f"GP {record['penalty']:.4f} |grad| {grad_norm:.3f} | "
                f"distance to mode {distance:.3f} modes {modes}/8"
            )

    distance, modes = sample_quality(fake_batch(1024).detach())
    return {
        "steps": args.steps,
        "history": history,
        "final": history[-1],
        "grad_norm": input_grad_norm(critic, sample_real(1024, data)),
        "start_distance": start_distance,
        "distance": distance,
        "modes_covered": modes,
    }


if __name__ == "__main__":
    main()
