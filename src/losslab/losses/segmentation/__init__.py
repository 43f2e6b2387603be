"""Segmentation losses: the Dice family, Tversky, Lovasz, boundary; one policy for empty and ignored labels."""

from losslab.losses.segmentation.boundary import BoundaryLoss, boundary_loss
from losslab.losses.segmentation.dice import DiceLoss, dice_loss
from losslab.losses.segmentation.distance import distance_transform, signed_distance
from losslab.losses.segmentation.focal_tversky import FocalTverskyLoss, focal_tversky_loss
from losslab.losses.segmentation.generalized_dice import GeneralizedDiceLoss, generalized_dice_loss
from losslab.losses.segmentation.hausdorff import HausdorffDTLoss, hausdorff_dt_loss
from losslab.losses.segmentation.jaccard import JaccardLoss, jaccard_loss
from losslab.losses.segmentation.log_cosh_dice import LogCoshDiceLoss, log_cosh_dice_loss
from losslab.losses.segmentation.log_dice import LogDiceLoss, log_dice_loss
from losslab.losses.segmentation.lovasz_hinge import LovaszHingeLoss, lovasz_hinge_loss
from losslab.losses.segmentation.lovasz_softmax import LovaszSoftmaxLoss, lovasz_softmax_loss
from losslab.losses.segmentation.presets import BCEDiceLoss, CEDiceLoss, FocalDiceLoss
from losslab.losses.segmentation.tversky import TverskyLoss, tversky_loss

__all__ = [
    "BCEDiceLoss",
    "BoundaryLoss",
    "CEDiceLoss",
    "DiceLoss",
    "FocalDiceLoss",
    "FocalTverskyLoss",
    "GeneralizedDiceLoss",
    "HausdorffDTLoss",
    "JaccardLoss",
    "LogCoshDiceLoss",
    "LogDiceLoss",
    "LovaszHingeLoss",
    "LovaszSoftmaxLoss",
    "TverskyLoss",
    "boundary_loss",
    "dice_loss",
    "distance_transform",
    "focal_tversky_loss",
    "generalized_dice_loss",
    "hausdorff_dt_loss",
    "jaccard_loss",
    "log_cosh_dice_loss",
    "log_dice_loss",
    "lovasz_hinge_loss",
    "lovasz_softmax_loss",
    "signed_distance",
    "tversky_loss",
]
