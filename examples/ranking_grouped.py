"""Learning to rank on grouped data: flat scores with query ids, or padded lists with a mask.

What it shows:

* tabular learning-to-rank data: one row per (query, document) with features, a graded
  relevance 0-4 and the query id, rows of different queries interleaved, queries of 5 to 30
  documents;
* a scoring MLP trained with a losslab ranking loss on the **flat layout**:
  ``loss(scores, relevance, group=query_ids)`` with ``scores`` (N,) (no padding to build); the
  loss is a spec string (``--loss``), by default ``lambda_loss`` (LambdaLoss, NDCG-Loss2++
  weighting), or e.g. ``listnet``, ``approx_ndcg``, ``ranknet``, ``"0.5*listnet + 0.5*ranknet"``
  (in a sum, ``group=`` reaches every term that takes it);
* the **padded layout** ``loss(scores, relevance, mask=mask)`` with (B, n) lists and a boolean
  mask, built here from the flat batch: both layouts give the same value;
* NDCG@k, MRR, MAP and precision@k from ``losslab.metrics.for_task("ranking", k=...)``,
  updated with whole queries (``group=``), before and after training.

Run::

    python examples/ranking_grouped.py                   # LambdaLoss, 300 steps
    python examples/ranking_grouped.py --loss listnet
    python examples/ranking_grouped.py --loss "0.5*listnet + 0.5*ranknet" --steps 500
    python examples/ranking_grouped.py --tiny            # 4 steps on 12 queries (what the tests run)
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, Optional

import torch
from torch import Tensor, nn

import losslab
from losslab.metrics import for_task


def make_queries(n_queries: int, n_features: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Flat LTR data: features (N, F), relevance (N,) in {0, ..., 4}, query ids (N,), rows shuffled."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n_features, generator=g) / n_features**0.5
    sizes = torch.randint(5, 31, (n_queries,), generator=g)
    group = torch.repeat_interleave(torch.arange(n_queries), sizes)
    # A query-level offset in the features: the scorer must rank within a query.
    offsets = torch.randn(n_queries, n_features, generator=g)
    x = torch.randn(len(group), n_features, generator=g) + offsets[group]
    utility = (x - offsets[group]) @ w + 0.3 * torch.tanh(x[:, 0] * x[:, 1])
    utility = utility + 0.3 * torch.randn(len(group), generator=g)
    relevance = torch.clamp(torch.floor(2.0 * utility + 1.0), 0, 4)
    perm = torch.randperm(len(group), generator=g)  # interleave the queries' rows
    return x[perm], relevance[perm], group[perm]


def to_padded(values: Tensor, group: Tensor) -> tuple[Tensor, Tensor]:
    """Flat (N,) values and ids -> (B, n) padded lists in ascending id order, and their mask.

    Items keep their input order within a list (as the flat layout of the losses does).
    """
    ids, counts = torch.unique(group, return_counts=True)
    row = torch.searchsorted(ids, group)
    order = torch.argsort(row, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    col = torch.arange(len(group)) - starts[row[order]]
    padded = values.new_zeros(len(ids), int(counts.max()))
    mask = torch.zeros(len(ids), int(counts.max()), dtype=torch.bool)
    padded = padded.index_put((row[order], col), values[order])  # differentiable in `values`
    mask[row[order], col] = True
    return padded, mask


def evaluate(
    model: nn.Module, x: Tensor, relevance: Tensor, group: Tensor, k: int
) -> dict[str, float]:
    metrics = for_task("ranking", k=k)
    model.eval()
    with torch.no_grad():
        metrics.update(model(x).squeeze(1), relevance, group=group)  # whole queries per call
    model.train()
    return {name: float(value) for name, value in metrics.compute().items()}


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--loss", default="lambda_loss", help="a losslab spec (default lambda_loss)"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="optimizer steps (default 300; 4 with --tiny)"
    )
    parser.add_argument("--queries-per-batch", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--k", type=int, default=5, help="cut-off of NDCG@k and precision@k")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="4 steps on 12 queries (tests)")
    args = parser.parse_args(argv)
    n_train_queries, n_val_queries = 300, 100
    if args.tiny:
        args.queries_per_batch, args.hidden = 4, 8
        n_train_queries, n_val_queries = 8, 4
    if args.steps is None:
        args.steps = 4 if args.tiny else 300

    torch.manual_seed(args.seed)
    x, relevance, group = make_queries(n_train_queries + n_val_queries, 16, args.seed)
    is_train = group < n_train_queries
    x_train, rel_train, group_train = x[is_train], relevance[is_train], group[is_train]
    x_val, rel_val, group_val = x[~is_train], relevance[~is_train], group[~is_train]

    loss_fn = losslab.parse(args.loss)
    model = nn.Sequential(nn.Linear(16, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    print(
        f"loss: {loss_fn.to_spec()} | {len(group_train)} training rows in {n_train_queries} queries"
    )

    # The two input layouts give the same loss (computed once, on the first batch of queries).
    batch_ids = torch.arange(min(args.queries_per_batch, n_train_queries))
    rows = torch.isin(group_train, batch_ids)
    with torch.no_grad():
        scores = model(x_train[rows]).squeeze(1)
        flat = loss_fn(scores, rel_train[rows], group=group_train[rows])
        padded_scores, mask = to_padded(scores, group_train[rows])
        padded_target, _ = to_padded(rel_train[rows], group_train[rows])
        padded = loss_fn(padded_scores, padded_target, mask=mask)
    print(f"flat layout {float(flat):.6f} == padded layout {float(padded):.6f}")

    before = evaluate(model, x_val, rel_val, group_val, args.k)
    ndcg_key = f"ndcg@{args.k}"
    print(f"before training: val {ndcg_key} {before[ndcg_key]:.4f} mrr {before['mrr']:.4f}")

    queries = torch.Generator().manual_seed(args.seed)
    losses: list[float] = []
    for step in range(1, args.steps + 1):
        batch_ids = torch.randperm(n_train_queries, generator=queries)[: args.queries_per_batch]
        rows = torch.isin(group_train, batch_ids)
        scores = model(x_train[rows]).squeeze(1)
        loss = loss_fn(scores, rel_train[rows], group=group_train[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step == 1 or step % 100 == 0 or step == args.steps:
            val = evaluate(model, x_val, rel_val, group_val, args.k)
            recent = sum(losses[-50:]) / len(losses[-50:])
            print(
                f"step {step:4d} | train loss (last 50 steps) {recent:.4f} | val {ndcg_key} "
                f"{val[ndcg_key]:.4f} mrr {val['mrr']:.4f} map {val['map']:.4f}"
            )

    after = evaluate(model, x_val, rel_val, group_val, args.k)
    return {
        "spec": loss_fn.to_spec(),
        "flat_loss": float(flat),
        "padded_loss": float(padded),
        "losses": losses,
        "before": before,
        "after": after,
    }


if __name__ == "__main__":
    main()
