"""Classification and class-imbalance losses, from logits unless named otherwise."""

from losslab.losses._discover import collect

__all__ = collect(__name__, __path__, globals())
