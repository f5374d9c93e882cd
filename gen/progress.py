"""Progress displays for long steps: which step runs, and the time it has taken so far."""

import sys
import threading
import time

__all__ = ["Progress", "StepLog", "LEVELS", "set_level", "level", "note"]

#: How much the displays say: ``quiet`` (nothing), ``normal``, ``verbose`` (also :func:`note`).
LEVELS = ("quiet", "normal", "verbose")
_level = "normal"


def set_level(name):
    """Set how much every display says (``tnngen -q`` / ``-v``)."""
    global _level
    if name not in LEVELS:
        raise ValueError(f"Level must be one of {', '.join(LEVELS)}, not {name!r}")
    _level = name


def level():
    return _level


def note(text, stream=None):
    """A detail for ``--verbose`` only (a tool's command line, where its log is)."""
    if _level == "verbose":
        print(text, file=sys.stderr if stream is None else stream, flush=True)


class Progress:
    """A progress display for long tool runs: which step, and the time it has taken.

    On a terminal, one line is redrawn every half second; elsewhere (logs, CI, parallel sweep
    workers) a line is printed when a step starts and ends, and every ``interval`` seconds in
    between.

    Parameters
    ----------
    stream : file, optional
        Where to write (default ``sys.stderr``); ``None`` disables the display.
    prefix : str
        Put before every line, e.g. the sweep point's name.
    interval : float
        Seconds between "still running" lines when ``stream`` is not a terminal.
    live : bool, optional
        Redraw one line (``True``) or print lines (``False``); by default, redraw on a
        terminal only.
    """

    def __init__(self, stream=sys.stderr, *, prefix="", interval=30.0, live=None):
        self._stream = None if _level == "quiet" else stream
        self._prefix = prefix
        self._interval = interval
        self._live = live

    def _is_live(self):
        if self._live is not None:
            return self._live
        return getattr(self._stream, "isatty", lambda: False)()

    def _write(self, text):
        if self._stream is not None:
            self._stream.write(text)
            self._stream.flush()

    def step(self, title):
        """Context manager: show ``title`` with a running clock while the block runs."""
        return _ProgressStep(self, title)


class _ProgressStep:
    def __init__(self, progress, title):
        self._progress = progress
        self._title = title
        self._done = threading.Event()
        self._thread = None
        self.seconds = 0.0

    def __enter__(self):
        self._start = time.monotonic()
        p = self._progress
        if p._stream is None:
            return self
        tty = p._is_live()
        p._write(f"{p._prefix}{self._title} ..." + ("" if tty else "\n"))
        self._thread = threading.Thread(target=self._tick, args=(tty,), daemon=True)
        self._thread.start()
        return self

    def _tick(self, tty):
        p = self._progress
        period = 0.5 if tty else p._interval
        while not self._done.wait(period):
            elapsed = time.monotonic() - self._start
            if tty:
                p._write(f"\r{p._prefix}{self._title} ... {elapsed:5.0f} s")
            else:
                p._write(f"{p._prefix}{self._title}: still running, {elapsed:.0f} s\n")

    def __exit__(self, exc_type, exc, tb):
        self.seconds = time.monotonic() - self._start
        self._done.set()
        p = self._progress
        if self._thread is not None:
            self._thread.join()
            tty = p._is_live()
            verdict = "failed" if exc_type is not None else "done"
            end = "\r\x1b[K" if tty else ""
            p._write(f"{end}{p._prefix}{self._title}: {verdict} in {self.seconds:.1f} s\n")
        return False


class StepLog:
    """A log of a long run's steps: one line per step, with the seconds since the run began.

    Parameters
    ----------
    stream : file, optional
        Where to write (default: standard output at the time of the call).
    """

    def __init__(self, stream=None):
        self._stream = sys.stdout if stream is None else stream
        self._start = time.perf_counter()

    def step(self, text):
        if _level == "quiet":
            return
        print(
            f"  [{time.perf_counter() - self._start:7.1f} s] {text}", file=self._stream, flush=True
        )
