"""Learning-to-rank losses: pairwise, listwise and NDCG-based, on padded lists or grouped items."""

__all__: list[str] = []
