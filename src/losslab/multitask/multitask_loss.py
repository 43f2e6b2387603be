"""``MultiTaskLoss``: one loss per task, combined by a task weighting."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Callable, Optional, Union, cast

import torch
from torch import Tensor, nn

from losslab._checks import fail
from losslab.compose.output import LossOutput
from losslab.multitask._base import (
    GradientWeighting,
    LossWeighting,
    Weighting,
    check_scalar_loss,
    check_task_keys,
    check_tasks,
)
from losslab.multitask._factory import make_weighting
from losslab.multitask.fixed import weighted_total

__all__ = ["MultiTaskLoss"]

TaskKwargs = Optional[Mapping[str, Mapping[str, Any]]]


def _detached(out: LossOutput) -> LossOutput:
    return LossOutput(
        total=out.total.detach(),
        components={k: v.detach() for k, v in out.components.items()},
        weights=dict(out.weights),
    )


class MultiTaskLoss(nn.Module):
    r"""Per-task losses over dicts of predictions and targets, combined by a task weighting.

    .. math:: L_i = \ell_i(\hat y_i, y_i), \qquad L = \mathrm{weighting}(L_1, \dots, L_T)

    The weighting is one of two kinds (see :mod:`losslab.multitask._base`):

    * a **loss weighting** (``"equal"``, a mapping of fixed weights, ``"uncertainty"``,
      ``"dwa"``, ``"random"``) turns the task losses into one differentiable total:
      ``mtl(preds, targets)`` returns it and ``total.backward()`` trains as usual. Learned
      weights (uncertainty) are parameters of this module: put ``mtl.parameters()`` in the
      optimizer.
    * a **gradient weighting** (``"gradnorm"``, ``"pcgrad"``, ``"mgda"``, ``"cagrad"``) acts on
      the per-task gradients of the shared parameters; a plain total would silently skip
      that, so ``mtl(preds, targets)`` raises ``TypeError`` for them.

    :meth:`backward` is one training call for both kinds::

        out = mtl.backward(preds, targets, shared_parameters=model.trunk.parameters())
        optimizer.step(); optimizer.zero_grad()
        log(out.log_dict())

    (loss weightings ignore ``shared_parameters``). Call :meth:`epoch_end` once per epoch
    (DWA needs it; it is harmless for the others). In Lightning, use manual optimization
    and call ``mtl.backward(...)`` in place of ``self.manual_backward(loss)``.
    The weighting is a submodule: ``state_dict`` holds its state (learned weights, loss
    history, generator state) next to the module losses' buffers.

    Distributed training (DDP): pass a gradient weighting built with ``sync="global"``
    (e.g. ``weighting=PCGrad(tasks, sync="global")``); DDP alone does not synchronize what
    it writes. A learned loss weighting (uncertainty) is synchronized only if this module is
    inside the DDP-wrapped module or wrapped in its own DDP. See :mod:`losslab.multitask._base`.

    Args:
        losses: ``{task: loss}``; each loss is called as ``loss(preds[task], targets[task])``
            and must return a scalar (use ``reduction="mean"`` or ``"sum"``). Module losses
            (any ``nn.Module``) are kept in an ``nn.ModuleDict`` (``self.losses``) so they follow
            ``.to()`` and ``state_dict``; other callables (functions, lambdas) are kept as is.
        weighting: a key (``"equal"``, ``"uncertainty"``, ``"dwa"``, ``"random"``,
            ``"gradnorm"``, ``"pcgrad"``, ``"mgda"``, ``"cagrad"``), a mapping
            ``{task: weight}`` of fixed weights, or a Weighting instance over the same tasks
            (to set its hyperparameters).

    >>> import losslab
    >>> mtl = MultiTaskLoss({"cls": losslab.BCEWithLogitsLoss(), "reg": losslab.MSELoss()},
    ...                     weighting={"cls": 1.0, "reg": 0.5})
    >>> preds = {"cls": torch.tensor([0.0, 2.0]), "reg": torch.tensor([1.0, 3.0])}
    >>> targets = {"cls": torch.tensor([0.0, 1.0]), "reg": torch.tensor([0.0, 1.0])}
    >>> mtl.evaluate(preds, targets).log_dict()
    {'loss/total': 1.6600..., 'loss/cls': 0.4100..., 'loss/reg': 2.5}
    """

    tasks: tuple[str, ...]
    weighting: Weighting

    def __init__(
        self,
        losses: Mapping[str, Callable[..., Tensor]],
        *,
        weighting: Union[str, Mapping[str, float], Weighting] = "equal",
    ) -> None:
        super().__init__()
        fn = type(self).__name__
        if not isinstance(losses, Mapping):
            fail(
                fn,
                "losses",
                "be a mapping {task: loss}",
                type(losses).__name__,
                kind=TypeError,
                raw_got=True,
            )
        self.tasks = check_tasks(fn, losses.keys())
        self.losses = nn.ModuleDict()
        self._plain: dict[str, Callable[..., Tensor]] = {}
        for name in self.tasks:
            loss = losses[name]
            if isinstance(loss, nn.Module):
                try:
                    self.losses[name] = loss
                    clash = False
                except KeyError:
                    clash = True
                if clash:
                    # ModuleDict keys become attribute and state_dict names: no dots, and no
                    # names of nn.Module's own attributes ("train", "to", ...).
                    fail(
                        fn,
                        "losses",
                        "use task names that are valid module names (no '.', not an "
                        "nn.Module attribute such as 'train') for module losses",
                        repr(name),
                        raw_got=True,
                    )
            elif callable(loss):
                self._plain[name] = loss
            else:
                fail(
                    fn,
                    f"losses[{name!r}]",
                    "be callable (a loss module or function)",
                    type(loss).__name__,
                    kind=TypeError,
                    raw_got=True,
                )
        self.weighting = make_weighting(weighting, self.tasks)

    # ------------------------------------------------------------------ per-task losses
    def loss_fn(self, task: str) -> Callable[..., Tensor]:
        """The loss of ``task``."""
        if task in self.losses:
            module: Callable[..., Tensor] = self.losses[task]
            return module
        return self._plain[task]

    def task_losses(
        self,
        preds: Mapping[str, Any],
        targets: Mapping[str, Any],
        *,
        task_kwargs: TaskKwargs = None,
    ) -> dict[str, Tensor]:
        """``{task: loss(preds[task], targets[task], **task_kwargs.get(task, {}))}``, each a scalar.

        Args:
            preds: ``{task: prediction}`` with exactly the tasks.
            targets: ``{task: target}`` with exactly the tasks.
            task_kwargs: optional ``{task: {keyword: value}}`` passed to that task's loss only
                (``sample_weight``, ``mask``, ...).
        """
        fn = f"{type(self).__name__}.task_losses"
        check_task_keys(fn, "preds", preds, self.tasks)
        check_task_keys(fn, "targets", targets, self.tasks)
        extras: Mapping[str, Mapping[str, Any]] = {}
        if task_kwargs is not None:
            if not isinstance(task_kwargs, Mapping):
                fail(
                    fn,
                    "task_kwargs",
                    "be a mapping {task: {keyword: value}}",
                    type(task_kwargs).__name__,
                    kind=TypeError,
                    raw_got=True,
                )
            unknown = [k for k in task_kwargs if k not in self.tasks]
            if unknown:
                fail(
                    fn,
                    "task_kwargs",
                    f"name only the tasks {list(self.tasks)}",
                    f"unknown {unknown}",
                    raw_got=True,
                )
            for name, kw in task_kwargs.items():
                if not isinstance(kw, Mapping):
                    fail(
                        fn,
                        f"task_kwargs[{name!r}]",
                        "be a mapping {keyword: value}",
                        type(kw).__name__,
                        kind=TypeError,
                        raw_got=True,
                    )
            extras = task_kwargs
        out: dict[str, Tensor] = {}
        for name in self.tasks:
            value = self.loss_fn(name)(preds[name], targets[name], **extras.get(name, {}))
            out[name] = check_scalar_loss(fn, name, value, verb="return")
        return out

    # ------------------------------------------------------------------ totals
    @property
    def is_gradient_weighting(self) -> bool:
        """True when the weighting acts on gradients (use :meth:`backward`)."""
        return isinstance(self.weighting, GradientWeighting)

    def forward(
        self,
        preds: Mapping[str, Any],
        targets: Mapping[str, Any],
        *,
        task_kwargs: TaskKwargs = None,
    ) -> Tensor:
        """The weighted total (loss weightings only)."""
        if self.is_gradient_weighting:
            raise TypeError(
                f"{type(self).__name__}(): the weighting {type(self.weighting).__name__} acts on "
                "gradients, so a plain total would silently skip it; call "
                "`.backward(preds, targets, shared_parameters)` instead of `loss(preds, "
                "targets).backward()`."
            )
        return self.evaluate(preds, targets, task_kwargs=task_kwargs).total

    def evaluate(
        self,
        preds: Mapping[str, Any],
        targets: Mapping[str, Any],
        *,
        task_kwargs: TaskKwargs = None,
    ) -> LossOutput:
        """The total with its per-task components and the weights in use.

        For a loss weighting this is ``weighting.combine(task_losses)`` (differentiable; DWA
        records and RLW draws in training mode, as for ``forward``). For a gradient weighting it
        is the plain sum with the weights the weighting reports, computed under ``no_grad``
        (detached, for logging and validation; train with :meth:`backward`).
        """
        if not self.is_gradient_weighting:
            losses = self.task_losses(preds, targets, task_kwargs=task_kwargs)
            return cast(LossWeighting, self.weighting).combine(losses)
        with torch.no_grad():
            losses = self.task_losses(preds, targets, task_kwargs=task_kwargs)
            reported = self.weighting.current_weights()
            weights = {t: float(reported[t]) for t in self.tasks}
            total = weighted_total(losses, weights)
        return LossOutput(total=total, components=losses, weights=weights)

    def backward(
        self,
        preds: Mapping[str, Any],
        targets: Mapping[str, Any],
        shared_parameters: Optional[Iterable[Tensor]] = None,
        *,
        task_kwargs: TaskKwargs = None,
        **weighting_kwargs: Any,
    ) -> LossOutput:
        """Compute the task losses and run the backward step; returns a detached LossOutput.

        Loss weightings call ``total.backward()`` (``shared_parameters`` is not needed);
        gradient weightings run ``weighting.backward(losses, shared_parameters,
        **weighting_kwargs)``, which accumulates the combined gradient into ``.grad``. Then
        call ``optimizer.step()``.
        """
        fn = f"{type(self).__name__}.backward"
        if not self.is_gradient_weighting:
            if weighting_kwargs:
                arg = sorted(weighting_kwargs)[0]
                fail(
                    fn,
                    arg,
                    "be passed only with a gradient weighting (it goes to weighting.backward)",
                    f"{arg}=... with {type(self.weighting).__name__}",
                    kind=TypeError,
                    raw_got=True,
                )
            out = self.evaluate(preds, targets, task_kwargs=task_kwargs)
            out.total.backward()
            return _detached(out)
        if shared_parameters is None and weighting_kwargs.get("representation") is None:
            fail(
                fn,
                "shared_parameters",
                f"be given for the gradient weighting {type(self.weighting).__name__} (the "
                "parameters every task shares, e.g. the trunk's; MGDA also accepts "
                "representation=Z, the shared encoder's output)",
                "None",
                raw_got=True,
            )
        losses = self.task_losses(preds, targets, task_kwargs=task_kwargs)
        weighting = cast(GradientWeighting, self.weighting)
        return weighting.backward(losses, shared_parameters, **weighting_kwargs)

    # ------------------------------------------------------------------ epochs, logging
    def epoch_end(self) -> None:
        """Tell the weighting an epoch ended (DWA updates its weights here)."""
        self.weighting.epoch_end()

    def current_weights(self) -> dict[str, float]:
        """The weighting's current task weights, as Python floats."""
        return self.weighting.current_weights()

    def extra_repr(self) -> str:
        plain = [t for t in self.tasks if t in self._plain]
        text = f"tasks={list(self.tasks)}, weighting={self.weighting.key!r}"
        if plain:
            text += f", function_losses={plain}"
        return text
