"""The training loop of ``train_loop.py`` as a Lightning ``LightningModule``.

What it shows:

* a composed losslab loss (``0.5 * focal + 0.5 * bce + l1 * L1Penalty`` over the first layer)
  held by the LightningModule; ``loss.evaluate(...)`` gives the total to return from
  ``training_step`` and the unweighted components to log with ``self.log_dict``
  (``LossOutput.log_dict(prefix="train/")`` has the keys ``train/total``, ``train/focal``, ...);
* validation metrics from ``losslab.metrics.for_task("binary", prefix="val/")`` updated in
  ``validation_step`` and computed, logged and reset once per validation epoch (they
  synchronize across processes under DDP);
* a ``Trainer`` on the CPU without logger, checkpoints or progress bar: the logged values are
  read back from ``trainer.callback_metrics``.

Requires ``lightning`` (``pip install lightning``; losslab's ``dev`` extra has it) and
scikit-learn for the data (the breast-cancer set it ships).

Run::

    python examples/lightning_module.py            # 300 steps
    python examples/lightning_module.py --steps 600
    python examples/lightning_module.py --tiny     # 4 steps on 64 samples (what the tests run)
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Sequence
from typing import Any, Optional

import lightning as L
import torch
from sklearn.datasets import load_breast_cancer
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

import losslab
from losslab.metrics import for_task


def load_data(seed: int, limit: Optional[int] = None) -> tuple[TensorDataset, TensorDataset]:
    """Standardized breast-cancer features and {0, 1} labels, split 80/20 (train, val)."""
    x_np, y_np = load_breast_cancer(return_X_y=True)
    x = torch.tensor(x_np, dtype=torch.float32)
    y = torch.tensor(y_np, dtype=torch.float32)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    if limit is not None:
        order = order[:limit]
    x, y = x[order], y[order]
    n_train = int(0.8 * len(x))
    mean, std = x[:n_train].mean(0), x[:n_train].std(0)
    x = (x - mean) / std
    return TensorDataset(x[:n_train], y[:n_train]), TensorDataset(x[n_train:], y[n_train:])


def input_layer_only(name: str, param: Tensor) -> bool:
    """Parameter filter of the L1 penalty: the first layer's weight matrix only."""
    return name == "0.weight"


class BinaryClassifier(L.LightningModule):
    def __init__(
        self,
        n_features: int,
        *,
        hidden: int = 32,
        lr: float = 3e-3,
        gamma: float = 2.0,
        l1: float = 1e-3,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.lr = lr
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )
        focal = losslab.SigmoidFocalLoss(alpha=0.25, gamma=gamma)
        # The penalty keeps references to the covered parameters without registering them, so
        # they appear once in self.parameters() and in the checkpoint.
        sparsity = losslab.L1Penalty(self.net, filter=input_layer_only)
        self.loss = 0.5 * focal + 0.5 * losslab.BCEWithLogitsLoss() + l1 * sparsity
        # A MetricCollection is an nn.Module: as an attribute it follows the module's device.
        self.val_metrics = for_task("binary", prefix="val/")

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(1)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        out = self.loss.evaluate(self(x), y)
        # Per step and averaged over the epoch; log_dict gives detached floats.
        self.log_dict(out.log_dict(prefix="train/"), on_step=True, on_epoch=True, batch_size=len(x))
        return out.total

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.val_metrics.update(logits, y.long())
        val_bce = losslab.functional.bce_with_logits_loss(logits, y)
        self.log("val/bce", val_bce, on_epoch=True, batch_size=len(x))  # weighted by batch size

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.val_metrics.compute())
        self.val_metrics.reset()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class PrintProgress(L.Callback):
    """A few lines of progress, since the progress bar is off."""

    def __init__(self, every: int) -> None:
        self.every = every

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        # Runs after the epoch's validation, so callback_metrics holds both.
        epoch = trainer.current_epoch + 1
        if epoch == 1 or epoch % self.every == 0 or trainer.global_step >= trainer.max_steps:
            m = trainer.callback_metrics
            losses = " ".join(
                f"{k.removeprefix('train/').removesuffix('_epoch')} {float(v):.4f}"
                for k, v in m.items()
                if k.startswith("train/") and k.endswith("_epoch")
            )
            val = " ".join(
                f"{k} {float(m[f'val/{k}']):.4f}" for k in ("bce", "auroc", "f1") if f"val/{k}" in m
            )
            print(f"epoch {epoch:3d} step {trainer.global_step:4d} | train {losses} | val {val}")


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--steps", type=int, default=None, help="optimizer steps (default 300; 4 with --tiny)"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="4 steps on 64 samples (tests)")
    args = parser.parse_args(argv)
    limit = None
    if args.tiny:
        args.batch_size, args.hidden, limit = 16, 8, 64
    if args.steps is None:
        args.steps = 4 if args.tiny else 300

    L.seed_everything(args.seed, verbose=False)
    train_set, val_set = load_data(args.seed, limit)
    shuffle = torch.Generator().manual_seed(args.seed)
    train = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, generator=shuffle)
    val = DataLoader(val_set, batch_size=args.batch_size)
    model = BinaryClassifier(train_set.tensors[0].shape[1], hidden=args.hidden, lr=args.lr)
    trainer = L.Trainer(
        max_steps=args.steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
        deterministic=True,
        callbacks=[PrintProgress(every=10)],
    )
    with warnings.catch_warnings():
        # Lightning suggests worker processes for the DataLoaders; in-memory tensors need none.
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        # Lightning 2.6 touches a pytree class that torch 2.13 deprecates: not this code's.
        warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
        trainer.fit(model, train, val)

    logged = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return {"steps": trainer.global_step, "epochs": trainer.current_epoch, "logged": logged}


if __name__ == "__main__":
    import logging

    # Keep Lightning's banner lines ("GPU available: ...", tips) out of the progress output.
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    main()
