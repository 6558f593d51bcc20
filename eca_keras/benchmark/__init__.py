"""Speed and memory of the ECA models side by side with their plain twins, keras.applications
and the PyTorch reference (``eca-keras benchmark``)."""

from eca_keras.benchmark.report import markdown
from eca_keras.benchmark.suite import Settings, run
from eca_keras.benchmark.timing import Timing, compare

__all__ = ["Settings", "Timing", "compare", "markdown", "run"]
