"""``losslab check``: a doctor for users' own loss functions."""
