"""One probe per module; each exposes ``PROBE`` (see ``losslab.doctor._types.Probe``)."""
