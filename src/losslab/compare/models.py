"""Small, seeded models for ``losslab compare``: one per task, the same for every loss.

* tabular (binary, multiclass, regression): :class:`MLP`, ``(B, F)`` -> ``(B,)`` or ``(B, K)``;
* segmentation: :class:`SmallUNet`, ``(B, 1, H, W)`` -> ``(B, K, H, W)`` logits, two
  down-sampling and two up-sampling stages with skip connections and BatchNorm;
* ranking: :class:`MLP` as a scorer, ``(N, F)`` -> ``(N,)`` (one score per item);
* forecasting: :class:`MLP` over the input window, ``(B, W)`` -> ``(B, horizon)`` or
  ``(B, horizon, Q)`` for quantile losses.

Every random number (initialization and dropout) comes from an explicit
:class:`torch.Generator` seeded from ``seed``: the global RNG is never read, so the same seed
gives bit-identical weights and dropout masks whatever ran before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losslab._checks import fail
from losslab.compare._types import TASKS, TaskData

__all__ = ["MLP", "SeededDropout", "SmallUNet", "default_out_features", "make_model"]


class SeededDropout(nn.Module):
    """Inverted dropout whose masks come from its own generator (not the global RNG).

    ``generator`` is not part of the ``state_dict``: weights are what a checkpoint holds; the
    mask stream restarts from ``seed`` when the module is rebuilt.
    """

    def __init__(self, p: float, *, seed: int) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            fail("SeededDropout", "p", "be in [0, 1)", p)
        self.p = float(p)
        self.generator = torch.Generator().manual_seed(int(seed))

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        # Drawn on the CPU generator, then moved: the same masks on every device.
        keep = torch.rand(x.shape, generator=self.generator) >= self.p
        return x * keep.to(device=x.device, dtype=x.dtype) / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MLP(nn.Module):
    """Linear -> ReLU -> dropout blocks, then a linear head reshaped to ``out_shape``.

    ``out_shape=()`` gives one value per example ``(B,)``; ``(K,)`` gives ``(B, K)``;
    ``(T, Q)`` gives ``(B, T, Q)``.
    """

    def __init__(
        self,
        in_features: int,
        out_shape: Sequence[int] = (),
        *,
        hidden: Sequence[int] = (64, 64),
        dropout: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.out_shape = tuple(int(s) for s in out_shape)
        layers: list[nn.Module] = []
        width = int(in_features)
        with torch.random.fork_rng(devices=[]):  # layer constructors draw from the global RNG
            for i, h in enumerate(hidden):
                layers += [nn.Linear(width, h), nn.ReLU()]
                if dropout > 0:
                    layers.append(SeededDropout(dropout, seed=_substream(seed, 100 + i)))
                width = h
            layers.append(nn.Linear(width, math.prod(self.out_shape)))
        self.net = nn.Sequential(*layers)
        init_parameters(self, seed)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1)).reshape(x.shape[0], *self.out_shape)


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    # BatchNorm: without it the net sits at "all background" for many epochs on digits-seg
    # (93 % background pixels), and Dice-type losses barely move at all.
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


class SmallUNet(nn.Module):
    """A two-level U-Net: ``(B, in_channels, H, W)`` -> ``(B, out_channels, H, W)`` logits.

    Encoder ``c -> 2c -> 4c`` channels (max-pooling by 2 twice), decoder with transposed
    convolutions and skip connections (concatenation), a 1x1 head. Each stage is two 3x3
    convolutions, each followed by BatchNorm (batch statistics in training, running averages
    in evaluation; they are part of the ``state_dict``) and ReLU. ``H`` and ``W`` need not
    be multiples of 4: the input is zero-padded to one and the output cropped back.
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, channels: int = 8, seed: int = 0
    ) -> None:
        super().__init__()
        c = int(channels)
        with torch.random.fork_rng(devices=[]):  # layer constructors draw from the global RNG
            self.enc1 = _double_conv(in_channels, c)
            self.enc2 = _double_conv(c, 2 * c)
            self.bottom = _double_conv(2 * c, 4 * c)
            self.up2 = nn.ConvTranspose2d(4 * c, 2 * c, 2, stride=2)
            self.dec2 = _double_conv(4 * c, 2 * c)
            self.up1 = nn.ConvTranspose2d(2 * c, c, 2, stride=2)
            self.dec1 = _double_conv(2 * c, c)
            self.head = nn.Conv2d(c, out_channels, 1)
        init_parameters(self, seed)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % 4, (-w) % 4
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        b = self.bottom(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(b), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return self.head(d1)[..., :h, :w]


def _substream(seed: int, k: int) -> int:
    """An independent 63-bit seed for stream ``k`` of ``seed`` (numpy's SeedSequence)."""
    import numpy as np

    return int(np.random.SeedSequence([int(seed), int(k)]).generate_state(1, np.uint64)[0] >> 1)


@torch.no_grad()
def init_parameters(model: nn.Module, seed: int) -> None:
    """Re-initialize every Linear / Conv layer with PyTorch's default scheme from ``seed``.

    Kaiming-uniform weights (``a = sqrt(5)``) and ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` biases,
    exactly nn.Linear's and nn.Conv's own ``reset_parameters``, but drawn from one generator
    so the global RNG is neither read nor advanced.
    """
    gen = torch.Generator().manual_seed(int(seed))
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            weight = torch.empty(module.weight.shape)
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=gen)
            module.weight.copy_(weight)
            if module.bias is not None:
                fan_in, _ = nn.init._calculate_fan_in_and_fan_out(module.weight)
                bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                bias = torch.empty(module.bias.shape).uniform_(-bound, bound, generator=gen)
                module.bias.copy_(bias)


def default_out_features(data: TaskData) -> int:
    """Outputs per example (per pixel for segmentation, per step for forecasting).

    binary 1 (a logit), multiclass C, regression 1 (or the target's width), segmentation C
    (1 when C = 2: one foreground logit, the binary mode), ranking 1, forecasting 1.
    """
    task = data.task
    if task == "multiclass":
        return int(_num_classes(data))
    if task == "segmentation":
        c = int(_num_classes(data))
        return 1 if c == 2 else c
    if task == "regression" and data.train.y.dim() == 2:
        return int(data.train.y.shape[1])
    return 1


def make_model(
    data: TaskData,
    *,
    out_features: Optional[int] = None,
    seed: int = 0,
    hidden: int = 64,
    dropout: float = 0.1,
    channels: int = 8,
) -> nn.Module:
    """The model ``losslab compare`` trains for ``data``'s task, initialized from ``seed``.

    Args:
        data: the task data; its training inputs give the input shape.
        out_features: outputs per example (per pixel, per forecast step); default
            :func:`default_out_features`. Quantile losses pass Q: forecasting models then
            return ``(B, horizon, Q)`` and regression models ``(B, Q)``.
        seed: seeds initialization and the dropout masks.
        hidden: width of the two hidden layers of the MLPs.
        dropout: dropout probability of the MLPs (the U-Net has none).
        channels: channels of the U-Net's first level (then 2x and 4x).

    Output shapes: binary, ranking and single-output regression ``(B,)``; multiclass
    ``(B, C)``; segmentation ``(B, K, H, W)``; forecasting ``(B, horizon)`` or
    ``(B, horizon, Q)``.

    >>> import torch
    >>> from losslab.compare._types import Split, TaskData
    >>> split = Split(torch.zeros(4, 6), torch.zeros(4))
    >>> data = TaskData("toy", "binary", split, split, split)
    >>> make_model(data, seed=0)(split.x).shape
    torch.Size([4])
    """
    fn = "make_model"
    if data.task not in TASKS:
        fail(fn, "data.task", f"be one of {list(TASKS)}", data.task)
    k = default_out_features(data) if out_features is None else int(out_features)
    if k < 1:
        fail(fn, "out_features", "be a positive int", out_features)
    x = data.train.x
    task = data.task
    if task == "segmentation":
        if x.dim() != 4:
            fail(fn, "data.train.x", "have shape (N, channels, H, W)", tuple(x.shape), raw_got=True)
        return SmallUNet(int(x.shape[1]), k, channels=channels, seed=seed)
    if x.dim() < 2:
        fail(fn, "data.train.x", "have shape (N, features)", tuple(x.shape), raw_got=True)
    in_features = math.prod(x.shape[1:])
    out_shape: tuple[int, ...]
    if task == "forecasting":
        horizon = int(data.train.y.shape[1]) if data.train.y.dim() == 2 else 1
        out_shape = (horizon,) if k == 1 else (horizon, k)
    elif task in ("binary", "ranking"):
        out_shape = () if k == 1 else (k,)
    elif task == "multiclass":
        out_shape = (k,)
    else:  # regression
        out_shape = (k,) if (k > 1 or data.train.y.dim() == 2) else ()
    return MLP(in_features, out_shape, hidden=(hidden, hidden), dropout=dropout, seed=seed)


def _num_classes(data: TaskData) -> int:
    if data.num_classes is None or int(data.num_classes) < 2:
        fail(
            "make_model",
            "data.num_classes",
            f"be an int >= 2 for the {data.task} task",
            data.num_classes,
        )
    return int(data.num_classes)
