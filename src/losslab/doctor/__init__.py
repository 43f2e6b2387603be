"""``losslab check``: a doctor for users' own loss functions.

``check(fn, task=...)`` runs every probe in :mod:`losslab.doctor.probes` (one file each) on
realistic inputs for the task and returns a :class:`Report` of findings, each with its
evidence and a one-line fix. ``losslab.testing.assert_healthy`` wraps it for test suites.
"""

from losslab.doctor._types import Finding, Report, Sample
from losslab.doctor.check import available_probes, check

__all__ = ["Finding", "Report", "Sample", "available_probes", "check"]
