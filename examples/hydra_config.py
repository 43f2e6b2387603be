"""Choose the loss from a Hydra config: by ``_target_`` class path, by spec string, or by spec dict.

What it shows: the config group ``examples/conf/loss/`` holds one YAML file per loss, and
``hydra.utils.instantiate(cfg.loss)`` builds it:

* ``focal.yaml``: ``{_target_: losslab.SigmoidFocalLoss, alpha: 0.25, gamma: 2.0}``, a class
  with its constructor arguments (``losslab.parse`` accepts the same dict without Hydra);
* ``bce_dice.yaml`` (the default): ``{_target_: losslab.parse, spec: "0.5*bce + 0.5*dice(smooth=1)"}``,
  losslab's safe spec string (an allow-list over Python's ``ast``; nothing is evaluated);
* ``bce_tversky.yaml``: the dict form of a spec, ``{terms: [{loss: bce, weight: 0.3}, ...]}``.

The loss trains a tiny fully convolutional net on synthetic binary segmentation (a noisy
bright disc per image); its components are logged and Dice / IoU come from
``losslab.metrics.for_task("segmentation", mode="binary")``.

Requires ``hydra-core`` (``pip install hydra-core``). The config is composed with Hydra's
compose API so that ``main(argv)`` can be called from Python (the tests do); in your own
application decorate the entry point with
``@hydra.main(config_path="conf", config_name="config", version_base="1.3")`` instead.

Run (Hydra overrides as positional arguments)::

    python examples/hydra_config.py                                  # bce_dice, 150 steps
    python examples/hydra_config.py loss=focal loss.gamma=3.0
    python examples/hydra_config.py loss=bce_dice "loss.spec='0.3*bce + 0.7*dice(smooth=0.5)'"
    python examples/hydra_config.py loss=bce_tversky --steps 300
    python examples/hydra_config.py --tiny                           # 3 steps on 8 images (tests)
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

import losslab
from losslab.metrics import for_task

CONFIG_DIR = Path(__file__).resolve().parent / "conf"


def make_discs(n: int, size: int, noise: float, seed: int) -> tuple[Tensor, Tensor]:
    """(n, 1, size, size) noisy images of one bright disc each, and the disc masks (float)."""
    g = torch.Generator().manual_seed(seed)
    coords = torch.arange(size, dtype=torch.float32)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    centers = torch.rand(n, 2, generator=g) * (size - 8) + 4
    radii = torch.rand(n, generator=g) * (size / 4 - 2) + 2
    dist2 = (yy - centers[:, 0, None, None]) ** 2 + (xx - centers[:, 1, None, None]) ** 2
    masks = (dist2 <= radii[:, None, None] ** 2).float().unsqueeze(1)
    images = masks + noise * torch.randn(masks.shape, generator=g)
    return images, masks


def make_model(channels: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(channels, 1, 1),  # one logit per pixel: (B, 1, H, W), binary mode
    )


def load_config(overrides: Sequence[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def build_loss(loss_cfg: DictConfig) -> tuple[losslab.Loss, Optional[str]]:
    """The loss the config describes, and how ``losslab.parse`` builds the same dict without Hydra.

    ``losslab.parse`` understands ``_target_`` only for losslab loss classes; a
    ``_target_: losslab.parse`` entry is Hydra's business.
    """
    loss = instantiate(loss_cfg)
    without_hydra = None
    if loss_cfg._target_ != "losslab.parse":
        plain = OmegaConf.to_container(loss_cfg, resolve=True)  # a dict, as yaml.safe_load gives
        assert isinstance(plain, dict)
        without_hydra = losslab.parse(plain).to_spec()
    return loss, without_hydra


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides, e.g. loss=focal loss.gamma=3"
    )
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (config: 150)")
    parser.add_argument("--tiny", action="store_true", help="3 steps on 8 images (tests)")
    args = parser.parse_args(argv)
    overrides = list(args.overrides)
    if args.tiny:
        overrides += ["steps=3", "data.n_images=8", "data.size=12", "model.channels=4"]
    if args.steps is not None:
        overrides.append(f"steps={args.steps}")
    cfg = load_config(overrides)

    torch.manual_seed(cfg.seed)
    loss_fn, without_hydra = build_loss(cfg.loss)
    print("loss config: " + OmegaConf.to_yaml(cfg.loss).strip().replace("\n", "; "))
    print(f"built: {loss_fn.to_spec()}")
    if without_hydra is not None:
        print(f"losslab.parse builds the same dict without Hydra: {without_hydra}")

    images, masks = make_discs(cfg.data.n_images, cfg.data.size, cfg.data.noise, cfg.seed)
    n_train = max(1, int(0.75 * len(images)))
    model = make_model(cfg.model.channels)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    metrics = for_task("segmentation", mode="binary")

    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for step in range(1, cfg.steps + 1):
        out = loss_fn.evaluate(model(images[:n_train]), masks[:n_train])  # full batch
        optimizer.zero_grad()
        out.total.backward()
        optimizer.step()
        last = out.log_dict()
        first = first or last
        if step == 1 or step % 50 == 0 or step == cfg.steps:
            print(f"step {step:4d} | " + " ".join(f"{k} {v:.4f}" for k, v in last.items()))

    with torch.no_grad():
        metrics.update(model(images[n_train:]), masks[n_train:])
    scores = {key: float(value) for key, value in metrics.compute().items()}
    print("held-out " + " ".join(f"{k} {v:.4f}" for k, v in scores.items() if not math.isnan(v)))
    return {
        "spec": loss_fn.to_spec(),
        "same_without_hydra": without_hydra is None or without_hydra == loss_fn.to_spec(),
        "initial_losses": first,
        "final_losses": last,
        "metrics": scores,
    }


if __name__ == "__main__":
    main()
