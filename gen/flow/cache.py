"""Content-addressed cache of sweep points: a point's report and artifacts, kept by a key made of
everything that decides them.

A point's key (:func:`point_key`) is the sha256 of a canonical JSON document holding the sha256
of the description's bytes, the folding (as :func:`gen.compiler.folds.parse_fold` reads it, so
that equivalent specs share a key), the target, every option that changes the result (clock
constraint, pin width, place and route or not, the nextpnr seed, the test vectors), the
versions of the tools that ran and of the generator itself (a digest of its sources, so that a
changed compiler never reuses an old result). Each entry is one JSON file,
``DIR/<key[:2]>/<key>.json``, written to a temporary sibling and renamed into place, so that
concurrent sweeps sharing a cache never see half an entry. Failed points are never stored.

The folder is ``--cache DIR``, by default ``$XDG_CACHE_HOME/tnngen`` (``~/.cache/tnngen``
where the variable is unset).
"""

import base64
import contextlib
import functools
import hashlib
import json
import os

from ..files import write_text_atomic

__all__ = ["CACHE_FORMAT", "CacheError", "Cache", "default_directory", "point_key", "sources"]

CACHE_FORMAT = "tnngen-cache/1"


class CacheError(ValueError):
    """The cache folder cannot be made or used."""


def default_directory():
    """``$XDG_CACHE_HOME/tnngen``, or ``~/.cache/tnngen``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tnngen")


@functools.cache
def sources():
    """sha256 over the generator's own sources (``gen`` and ``hw``), in a fixed order."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    digest = hashlib.sha256()
    for package in ("gen", "hw"):
        root = os.path.join(here, package)
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    digest.update(os.path.relpath(path, here).encode("utf-8") + b"\0")
                    with open(path, "rb") as f:
                        digest.update(hashlib.sha256(f.read()).digest())
    return digest.hexdigest()


def point_key(material):
    """The key of a point: sha256 of ``material`` (a JSON-able dict) in canonical form."""
    text = json.dumps(material, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _encode(artifacts):
    encoded = {}
    for name, data in artifacts.items():
        try:
            encoded[name] = {"text": data.decode("utf-8")}
        except UnicodeDecodeError:
            encoded[name] = {"base64": base64.b64encode(data).decode("ascii")}
    return encoded


def _decode(encoded):
    artifacts = {}
    for name, entry in encoded.items():
        if "text" in entry:
            artifacts[name] = entry["text"].encode("utf-8")
        else:
            artifacts[name] = base64.b64decode(entry["base64"], validate=True)
    return artifacts


class Cache:
    """The cache in ``directory`` (created when the first entry is stored).

    Raises
    ------
    CacheError
        If ``directory`` exists and is not a folder.
    """

    def __init__(self, directory):
        self.directory = os.path.abspath(os.path.expanduser(directory))
        if os.path.exists(self.directory) and not os.path.isdir(self.directory):
            raise CacheError(f"--cache {directory}: not a folder")

    def path(self, key):
        return os.path.join(self.directory, key[:2], f"{key}.json")

    def get(self, key):
        """The stored result for ``key`` (``report``, ``artifacts``, ``directory``), or None.

        An unreadable or foreign entry counts as a miss (it is replaced by the next store).
        """
        try:
            with open(self.path(key), encoding="utf-8") as f:
                entry = json.load(f)
            if entry.get("format") != CACHE_FORMAT or entry.get("key") != key:
                return None
            result = entry["result"]
            return {
                "report": result["report"],
                "directory": result["directory"],
                "artifacts": _decode(result["artifacts"]),
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def put(self, key, material, result):
        """Store ``result`` (a successful point) under ``key``; ``material`` is what the key
        was made of, kept in the entry for inspection. Raises :class:`CacheError` when the
        folder cannot be written."""
        entry = {
            "format": CACHE_FORMAT,
            "key": key,
            "material": material,
            "result": {
                "report": result["report"],
                "directory": result["directory"],
                "artifacts": _encode(result["artifacts"]),
            },
        }
        path = self.path(key)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_text_atomic(path, json.dumps(entry) + "\n")
        except OSError as exc:
            raise CacheError(f"--cache {self.directory}: cannot store an entry: {exc}") from None

    def info(self):
        """``directory``, ``entries`` and ``bytes`` (their total size)."""
        entries = size = 0
        if os.path.isdir(self.directory):
            for shard in sorted(os.listdir(self.directory)):
                folder = os.path.join(self.directory, shard)
                if len(shard) != 2 or not os.path.isdir(folder):
                    continue
                for name in os.listdir(folder):
                    if name.endswith(".json") and not name.startswith("."):
                        with contextlib.suppress(OSError):
                            size += os.path.getsize(os.path.join(folder, name))
                            entries += 1
        return {"directory": self.directory, "entries": entries, "bytes": size}
