"""Atomic file output: every file the project writes goes to a temporary sibling first.

A failed or interrupted run therefore never leaves a half-written file, and never destroys the
file that was there before. Files come out with the mode the user's umask gives (``mkstemp``
alone would make them private).
"""

import contextlib
import os
import tempfile

__all__ = ["atomic_path", "write_text_atomic", "umask_mode"]


def umask_mode(mode=0o666):
    """``mode`` with the bits of the process's umask cleared."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


@contextlib.contextmanager
def atomic_path(path, *, suffix=".tmp"):
    """A temporary path beside ``path``, moved onto ``path`` when the block ends normally.

    The block writes the temporary file (by name, or by opening it); on any exception,
    ``KeyboardInterrupt`` included, the temporary file is removed and ``path`` is untouched.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tnngen-", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_text_atomic(path, text):
    """Write ``text`` (UTF-8) to ``path`` through a temporary file moved into place."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
