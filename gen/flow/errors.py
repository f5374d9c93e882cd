"""The errors of the tool flows: bad input, and runs that failed (a tool missing, failing,
timing out, or a design too big for its part)."""

__all__ = [
    "SynthInputError",
    "SynthError",
    "ToolMissing",
    "ToolFailed",
    "ToolTimeout",
    "DoesNotFit",
]


class SynthInputError(ValueError):
    """Bad input: an unknown target, a folder without metadata, malformed metadata."""


class SynthError(RuntimeError):
    """The run failed: a tool is missing, failed, timed out, or wrote unreadable output.

    Attributes
    ----------
    log_path : str or None
        The full log of the failed step, where there is one.
    """

    def __init__(self, message, log_path=None):
        super().__init__(message)
        self.log_path = log_path


class ToolMissing(SynthError):
    """Neither the native tool nor its YoWASP build is installed."""


class ToolFailed(SynthError):
    """A tool exited with an error."""


class ToolTimeout(SynthError):
    """A tool ran longer than the time-out and was stopped."""


class DoesNotFit(ToolFailed):
    """Place and route found the design bigger than the part.

    Attributes
    ----------
    report : dict
        The report of the run so far (synthesis figures, and nextpnr's utilization with what
        overflowed under ``place_and_route``), which :func:`run` still writes.
    """

    def __init__(self, message, log_path, report):
        super().__init__(message, log_path)
        self.report = report
