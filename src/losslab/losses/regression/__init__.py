"""Regression losses: squared, absolute and robust errors, quantiles, likelihoods."""

from losslab.losses.regression.barron import BarronLoss, barron_loss
from losslab.losses.regression.cauchy import CauchyLoss, cauchy_loss
from losslab.losses.regression.charbonnier import CharbonnierLoss, charbonnier_loss
from losslab.losses.regression.gaussian_nll import GaussianNLLLoss, gaussian_nll_loss
from losslab.losses.regression.geman_mcclure import GemanMcClureLoss, geman_mcclure_loss
from losslab.losses.regression.huber import HuberLoss, huber_loss
from losslab.losses.regression.log_cosh import LogCoshLoss, log_cosh_loss
from losslab.losses.regression.mae import MAELoss, mae_loss
from losslab.losses.regression.mse import MSELoss, mse_loss
from losslab.losses.regression.msle import MSLELoss, msle_loss
from losslab.losses.regression.pinball import PinballLoss, pinball_loss
from losslab.losses.regression.poisson_nll import PoissonNLLLoss, poisson_nll_loss
from losslab.losses.regression.smooth_l1 import SmoothL1Loss, smooth_l1_loss
from losslab.losses.regression.tweedie import TweedieDevianceLoss, tweedie_deviance_loss
from losslab.losses.regression.welsch import WelschLoss, welsch_loss
from losslab.losses.regression.wing import WingLoss, wing_loss

__all__ = [
    "BarronLoss",
    "CauchyLoss",
    "CharbonnierLoss",
    "GaussianNLLLoss",
    "GemanMcClureLoss",
    "HuberLoss",
    "LogCoshLoss",
    "MAELoss",
    "MSELoss",
    "MSLELoss",
    "PinballLoss",
    "PoissonNLLLoss",
    "SmoothL1Loss",
    "TweedieDevianceLoss",
    "WelschLoss",
    "WingLoss",
    "barron_loss",
    "cauchy_loss",
    "charbonnier_loss",
    "gaussian_nll_loss",
    "geman_mcclure_loss",
    "huber_loss",
    "log_cosh_loss",
    "mae_loss",
    "mse_loss",
    "msle_loss",
    "pinball_loss",
    "poisson_nll_loss",
    "smooth_l1_loss",
    "tweedie_deviance_loss",
    "welsch_loss",
    "wing_loss",
]
