"""``losslab compare``: train small models with several losses and seeds, report side by side.

``datasets`` (embedded data) and ``userdata`` (CSV/NPZ) build a ``TaskData``; ``train`` runs one
(loss, seed); ``runner`` runs and resumes a comparison; ``render`` draws the report. Heavy
packages (scikit-learn, matplotlib, rich, statsmodels) load inside the functions that use them.
"""
