"""Every pure loss function, flat: ``import losslab.functional as LF``."""

from losslab.losses import adversarial as _a
from losslab.losses import classification as _c
from losslab.losses import ranking as _k
from losslab.losses import regression as _r
from losslab.losses import regularization as _g
from losslab.losses import segmentation as _s
from losslab.losses import timeseries as _t
from losslab.losses.adversarial import *  # noqa: F403
from losslab.losses.classification import *  # noqa: F403
from losslab.losses.ranking import *  # noqa: F403
from losslab.losses.regression import *  # noqa: F403
from losslab.losses.regularization import *  # noqa: F403
from losslab.losses.segmentation import *  # noqa: F403
from losslab.losses.timeseries import *  # noqa: F403

__all__ = [
    n
    for n in (
        *_r.__all__,
        *_c.__all__,
        *_g.__all__,
        *_s.__all__,
        *_k.__all__,
        *_t.__all__,
        *_a.__all__,
    )
    if n.endswith(("_loss", "_penalty"))
]
