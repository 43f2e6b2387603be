"""Regression losses: squared, absolute and robust errors, quantiles, likelihoods."""

from losslab.losses._discover import collect

__all__ = collect(__name__, __path__, globals())
