"""Every built-in loss; importing this package registers them."""

from losslab.losses import classification, ranking, regression, regularization, segmentation
from losslab.losses.base import Loss
from losslab.losses.classification import *  # noqa: F403
from losslab.losses.ranking import *  # noqa: F403
from losslab.losses.regression import *  # noqa: F403
from losslab.losses.regularization import *  # noqa: F403
from losslab.losses.segmentation import *  # noqa: F403

__all__ = [
    "Loss",
    *regression.__all__,
    *classification.__all__,
    *regularization.__all__,
    *segmentation.__all__,
    *ranking.__all__,
]
