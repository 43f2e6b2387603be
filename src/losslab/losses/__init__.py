"""Every built-in loss; importing this package registers them."""

from losslab.losses import (
    adversarial,
    classification,
    ranking,
    regression,
    regularization,
    segmentation,
    timeseries,
)
from losslab.losses.adversarial import *  # noqa: F403
from losslab.losses.base import Loss
from losslab.losses.classification import *  # noqa: F403
from losslab.losses.ranking import *  # noqa: F403
from losslab.losses.regression import *  # noqa: F403
from losslab.losses.regularization import *  # noqa: F403
from losslab.losses.segmentation import *  # noqa: F403
from losslab.losses.timeseries import *  # noqa: F403

__all__ = [
    "Loss",
    *regression.__all__,
    *classification.__all__,
    *regularization.__all__,
    *segmentation.__all__,
    *ranking.__all__,
    *timeseries.__all__,
    *adversarial.__all__,
]
