"""Classification and class-imbalance losses, from logits unless named otherwise."""

from losslab.losses.classification.asymmetric import AsymmetricLoss, asymmetric_loss
from losslab.losses.classification.bce import BCEWithLogitsLoss, bce_with_logits_loss
from losslab.losses.classification.bce_probs import BCEProbsLoss, bce_probs_loss
from losslab.losses.classification.class_balanced import ClassBalancedLoss, class_balanced_loss
from losslab.losses.classification.cross_entropy import CrossEntropyLoss, cross_entropy_loss
from losslab.losses.classification.focal import SigmoidFocalLoss, sigmoid_focal_loss
from losslab.losses.classification.poly_ce import PolyCrossEntropyLoss, poly_cross_entropy_loss
from losslab.losses.classification.poly_focal import PolyFocalLoss, poly_focal_loss
from losslab.losses.classification.softmax_focal import SoftmaxFocalLoss, softmax_focal_loss

__all__ = [
    "AsymmetricLoss",
    "BCEProbsLoss",
    "BCEWithLogitsLoss",
    "ClassBalancedLoss",
    "CrossEntropyLoss",
    "PolyCrossEntropyLoss",
    "PolyFocalLoss",
    "SigmoidFocalLoss",
    "SoftmaxFocalLoss",
    "asymmetric_loss",
    "bce_probs_loss",
    "bce_with_logits_loss",
    "class_balanced_loss",
    "cross_entropy_loss",
    "poly_cross_entropy_loss",
    "poly_focal_loss",
    "sigmoid_focal_loss",
    "softmax_focal_loss",
]
