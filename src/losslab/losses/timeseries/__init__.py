"""Time-series losses: time-weighted errors, scaled errors (MASE, sMAPE, WAPE) and soft-DTW."""

__all__: list[str] = []
