"""Input checks shared by losslab's metrics: one ``(preds, target)`` pair per ``update``.

Every metric checks its inputs on every ``update`` through these helpers, so a wrong batch
fails loudly with the project's one error template (see :mod:`losslab._checks`) instead of
being broadcast, clamped or dropped. The name passed as ``fn`` is the metric's method, for
example ``"BestF1.update"``, and appears at the start of the message.
"""

from __future__ import annotations

from torch import Tensor

from losslab._checks import check_floating, check_same_device, check_same_shape, check_tensor

__all__ = ["check_pair"]


def check_pair(fn: str, preds: Tensor, target: Tensor) -> None:
    """Check one ``(preds, target)`` batch of a metric: same shape, same device, floating preds.

    The checks, in order (the first failure raises):

    1. ``preds`` and ``target`` are tensors (``TypeError``);
    2. ``preds`` is floating point (``TypeError``; ``target`` may have any dtype: labels are
       often integer or bool);
    3. ``target`` has exactly ``preds``' shape (``ValueError`` naming both shapes; nothing is
       broadcast, so ``(B, 1)`` against ``(B,)`` is refused with a hint to reshape);
    4. ``target`` is on ``preds``' device (``ValueError``).

    No value is read, so the check never synchronises with the device.

    Args:
        fn: the name reported in the message, e.g. ``"BestF1.update"``.
        preds: the predictions of one batch, any shape.
        target: the targets of the same batch, ``preds``' shape.

    Raises:
        TypeError: a non-tensor argument or non-floating ``preds``.
        ValueError: a shape or device mismatch.

    This signature is stable: other metric modules import it.

    >>> import torch
    >>> check_pair("MyMetric.update", torch.zeros(4), torch.ones(4))  # passes silently
    >>> check_pair("MyMetric.update", torch.zeros(4, 1), torch.ones(4))
    Traceback (most recent call last):
    ...
    ValueError: MyMetric.update(): `target` must have the same shape as `preds` (4, 1); got (4,). Reshape explicitly; losslab never broadcasts (B, 1) against (B,).
    """
    check_tensor(fn, "preds", preds)
    check_tensor(fn, "target", target)
    check_floating(fn, "preds", preds)
    check_same_shape(fn, "target", target, "preds", preds)
    check_same_device(fn, "target", target, "preds", preds)
