"""losslab: custom loss functions and metrics for PyTorch.

>>> import torch, losslab
>>> loss = 0.5 * losslab.MSELoss() + 0.5 * losslab.MSELoss(weight=2.0)
>>> loss.evaluate(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 1.0])).log_dict()
{'loss/total': 3.75, 'loss/mse': 2.5, 'loss/mse_2': 5.0}
"""

from losslab import functional, multitask
from losslab._backend import get_backend, set_backend, use_backend
from losslab._registry import available, entries, lookup, register
from losslab.compose import LossOutput, SpecError, WeightedSum, parse

# Star imports from each family (their __all__ are literal lists), not from losslab.losses
# (whose __all__ is computed): type checkers see every loss class and function.
from losslab.losses import __all__ as _losses_all
from losslab.losses.adversarial import *  # noqa: F403
from losslab.losses.base import Loss as Loss
from losslab.losses.classification import *  # noqa: F403
from losslab.losses.ranking import *  # noqa: F403
from losslab.losses.regression import *  # noqa: F403
from losslab.losses.regularization import *  # noqa: F403
from losslab.losses.segmentation import *  # noqa: F403
from losslab.losses.timeseries import *  # noqa: F403
from losslab.multitask import MultiTaskLoss

__version__ = "0.1.0.dev0"


def __getattr__(name: str) -> object:
    # `losslab.metrics` (torchmetrics), `compare`, `doctor`/`check` and `testing` load on first use, keeping `import losslab` light.
    if name in ("metrics", "compare", "doctor", "testing"):
        import importlib

        return importlib.import_module(f"losslab.{name}")
    if name == "check":
        from losslab.doctor import check

        return check
    raise AttributeError(f"module 'losslab' has no attribute {name!r}")


__all__ = [
    "LossOutput",
    "MultiTaskLoss",
    "SpecError",
    "WeightedSum",
    "available",
    "entries",
    "functional",
    "get_backend",
    "lookup",
    "multitask",
    "parse",
    "register",
    "set_backend",
    "use_backend",
    *_losses_all,
]
