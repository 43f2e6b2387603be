"""Train a small segmentation model with DistributedDataParallel and a global Dice + CE loss.

Run it with two processes on the CPU (gloo), on GPUs (nccl, one per process), or alone::

    torchrun --standalone --nproc_per_node=2 examples/ddp_segmentation.py
    torchrun --standalone --nproc_per_node=2 examples/ddp_segmentation.py --device cuda
    python examples/ddp_segmentation.py

Each rank trains on its own shard of every global batch of a synthetic dataset (discs and
squares on a noisy background: classes 0 background, 1 disc, 2 square). The loss is
``0.5 * cross-entropy + 0.5 * Dice`` where the Dice is taken over the whole batch
(``aggregate="batch"``) with ``sync="global"``: its per-class statistics are summed over the
ranks before the ratio, so every rank computes the Dice of the *global* batch, and after DDP
averages the gradients every parameter holds the gradient one process would get on the whole
global batch (see ``losslab.distributed``). With ``sync="local"`` each rank would optimize the
Dice of its own shard instead: a different objective. The cross-entropy is a plain mean over
equally sized shards, which DDP's averaging already makes exact.

Validation metrics (Dice and IoU per class, accumulated over the validation set) come from
``losslab.metrics.segmentation_metrics``; torchmetrics synchronizes their counts over the
ranks in ``compute()``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Optional

import torch
import torch.distributed as dist
from torch import nn

import losslab
from losslab.metrics import segmentation_metrics

CLASSES = 3


def make_data(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n images (n, 1, size, size) with masks (n, size, size): a disc and a square each."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    images = torch.empty(n, 1, size, size)
    masks = torch.zeros(n, size, size, dtype=torch.long)
    for i in range(n):
        r = int(torch.randint(size // 8, size // 4 + 1, (1,), generator=g))
        cy, cx = torch.randint(r, size - r, (2,), generator=g).tolist()
        masks[i][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
        s = int(torch.randint(size // 6, size // 3 + 1, (1,), generator=g))
        y0, x0 = torch.randint(0, size - s, (2,), generator=g).tolist()
        masks[i, y0 : y0 + s, x0 : x0 + s] = 2  # a square may cover part of the disc
        level = torch.tensor([0.0, 1.0, -1.0])[masks[i]]
        images[i, 0] = level + 0.6 * torch.randn(size, size, generator=g)
    return images, masks


def make_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=2, dilation=2),
        nn.ReLU(),
        nn.Conv2d(16, CLASSES, 1),
    )


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--global-batch", type=int, default=16, help="images per step, all ranks")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="2 steps on 16 x 16 images (tests)")
    args = parser.parse_args(argv)
    if args.tiny:
        args.steps, args.size, args.global_batch = min(args.steps, 2), 16, 8

    distributed = "WORLD_SIZE" in os.environ  # set by torchrun
    if not distributed:
        return train(args, distributed=False)
    dist.init_process_group("nccl" if args.device == "cuda" else "gloo")
    # Everything that holds the process group (the DDP wrapper and its reducer, the metrics)
    # lives in train() and is freed when it returns, before the group is destroyed. On an
    # error, no teardown: destroying the group while another rank waits in a collective can
    # hang; torchrun stops the other ranks.
    result = train(args, distributed=True)
    dist.barrier()  # both ranks reach teardown together
    dist.destroy_process_group()
    return result


def train(args: argparse.Namespace, *, distributed: bool) -> dict[str, Any]:
    """The training run of one process (of ``world`` processes when ``distributed``)."""
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    if args.global_batch % world:
        raise SystemExit(f"--global-batch {args.global_batch} must be a multiple of {world}")
    if args.device == "cuda":
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
        torch.set_num_threads(1 if distributed else torch.get_num_threads())

    torch.manual_seed(args.seed)  # the same initial weights on every rank
    model: nn.Module = make_model().to(device)
    if distributed:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    criterion = 0.5 * losslab.CrossEntropyLoss().named("ce") + 0.5 * losslab.DiceLoss(
        mode="multiclass", aggregate="batch", sync="global"
    ).named("dice")
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    train_x, train_y = make_data(args.steps * args.global_batch, args.size, seed=args.seed)
    val_x, val_y = make_data(4 * world, args.size, seed=args.seed + 1)
    per_rank = args.global_batch // world
    losses, dice_terms = [], []
    for step in range(args.steps):
        # Rank r takes rows r, r + world, ... of this step's global batch.
        rows = slice(step * args.global_batch + rank, (step + 1) * args.global_batch, world)
        x, y = train_x[rows].to(device), train_y[rows].to(device)
        assert x.shape[0] == per_rank
        out = criterion.evaluate(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        out.total.backward()  # DDP averages the gradients over the ranks here
        optimizer.step()
        losses.append(float(out.total.detach()))
        dice_terms.append(float(out.components["dice"].detach()))
        if rank == 0 and (step % 10 == 0 or step == args.steps - 1):
            parts = "  ".join(f"{k} {float(v.detach()):.4f}" for k, v in out.components.items())
            print(f"step {step:3d}  loss {float(out.total.detach()):.4f}  ({parts})", flush=True)

    # The Dice term is global (sync="global"): every rank saw the same value at every step.
    # (The cross-entropy term is each shard's own mean; DDP averages its gradients.)
    spread = 0.0
    if distributed:
        mine = torch.tensor(dice_terms, dtype=torch.float64, device=device)
        every = [torch.empty_like(mine) for _ in range(world)]
        dist.all_gather(every, mine)
        spread = max(float((t - mine).abs().max()) for t in every)

    metrics = segmentation_metrics(mode="multiclass", num_classes=CLASSES).to(device)
    model.eval()
    with torch.no_grad():
        shard = slice(rank, None, world)
        metrics.update(model(val_x[shard].to(device)), val_y[shard].to(device))
    scores = {k: float(v) for k, v in metrics.compute().items()}  # synced over the ranks
    if rank == 0:
        print(
            f"world_size={world}  final loss {losses[-1]:.4f}  validation dice "
            f"{scores['dice']:.3f}  iou {scores['iou']:.3f}  "
            f"dice term spread across ranks {spread:.1e}",
            flush=True,
        )
    result = {
        "rank": rank,
        "world_size": world,
        "losses": losses,
        "dice": scores["dice"],
        "iou": scores["iou"],
        "dice_terms": dice_terms,
        "dice_spread_across_ranks": spread,
    }
    return result


if __name__ == "__main__":
    main()
