"""Time-series losses: time-weighted errors, scaled errors (MASE, sMAPE, WAPE) and soft-DTW."""

from losslab.losses.timeseries.mase import MASELoss, mase_loss
from losslab.losses.timeseries.smape import SMAPELoss, smape_loss
from losslab.losses.timeseries.soft_dtw import SoftDTWLoss, soft_dtw_loss
from losslab.losses.timeseries.soft_dtw_divergence import (
    SoftDTWDivergenceLoss,
    soft_dtw_divergence_loss,
)
from losslab.losses.timeseries.time_weighted_mae import TimeWeightedMAELoss, time_weighted_mae_loss
from losslab.losses.timeseries.time_weighted_mse import TimeWeightedMSELoss, time_weighted_mse_loss
from losslab.losses.timeseries.wape import WAPELoss, wape_loss

__all__ = [
    "MASELoss",
    "SMAPELoss",
    "SoftDTWDivergenceLoss",
    "SoftDTWLoss",
    "TimeWeightedMAELoss",
    "TimeWeightedMSELoss",
    "WAPELoss",
    "mase_loss",
    "smape_loss",
    "soft_dtw_divergence_loss",
    "soft_dtw_loss",
    "time_weighted_mae_loss",
    "time_weighted_mse_loss",
    "wape_loss",
]
