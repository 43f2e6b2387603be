"""Learning-to-rank losses: pairwise, listwise and NDCG-based, on padded lists or grouped items."""

from losslab.losses.ranking.approx_ndcg import ApproxNDCGLoss, approx_ndcg_loss
from losslab.losses.ranking.lambda_loss import LambdaLoss, lambda_loss
from losslab.losses.ranking.listmle import ListMLELoss, listmle_loss
from losslab.losses.ranking.listnet import ListNetLoss, listnet_loss
from losslab.losses.ranking.neural_ndcg import NeuralNDCGLoss, neural_ndcg_loss
from losslab.losses.ranking.pairwise_hinge import PairwiseHingeLoss, pairwise_hinge_loss
from losslab.losses.ranking.ranknet import RankNetLoss, ranknet_loss

__all__ = [
    "ApproxNDCGLoss",
    "LambdaLoss",
    "ListMLELoss",
    "ListNetLoss",
    "NeuralNDCGLoss",
    "PairwiseHingeLoss",
    "RankNetLoss",
    "approx_ndcg_loss",
    "lambda_loss",
    "listmle_loss",
    "listnet_loss",
    "neural_ndcg_loss",
    "pairwise_hinge_loss",
    "ranknet_loss",
]
