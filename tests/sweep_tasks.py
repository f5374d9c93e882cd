"""Point tasks that misbehave on their first try, for the sweep engines' retry tests.

Each wraps :func:`gen.flow.engine.run_point` and misbehaves while its marker file does not
exist, creating it first, so that the first try of every point fails and the next succeeds.
The marker lives in the test's temporary folder, which the local workers share. Tests send
these to workers by value (``cloudpickle.register_pickle_by_value``), since the workers cannot
import the tests folder.
"""

import os
import signal

from gen.flow.engine import PointFailed, run_point


class _Once:
    def __init__(self, folder):
        self.folder = folder

    def first_try(self, task):
        marker = os.path.join(self.folder, f"{task.label}-{task.seed}.tried")
        if os.path.exists(marker):
            return False
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        return True


class FailOnce(_Once):
    """Raise :class:`PointFailed` on each point's first try (a tool crash)."""

    def __call__(self, task):
        if self.first_try(task):
            raise PointFailed(f"injected failure of {task.label}")
        return run_point(task)


class FailAlways:
    """Raise on every try of the points named in ``labels``; run the others."""

    def __init__(self, labels):
        self.labels = set(labels)

    def __call__(self, task):
        if task.label in self.labels:
            raise PointFailed(f"injected failure of {task.label}")
        return run_point(task)


class DieOnce(_Once):
    """Kill the worker process running each point's first try."""

    def __call__(self, task):
        if self.first_try(task):
            os.kill(os.getpid(), signal.SIGKILL)
        return run_point(task)
