"""Rows of a constant-weight layer as one graph of shared word adders.

A layer's rows ``acc[j] = sum_i W[j, i] * x[i]`` (weights in {-1, 0, +1}) have many sums in
common: with 64 rows of 256 ternary weights, a pair of columns appears with the same relative
sign in about twelve rows. :func:`plan_graph` finds them greedily, as in multiple-constant
multiplication: the pair ``x[a] + s * x[b]`` used by most rows becomes a new term, ``t``, which
those rows use instead of the pair; ``t`` then pairs with other columns and terms like any
column, so the shared sums grow level by level (``t + x[c]``, ``t + u``, ...) while a pair serves
at least two rows. What is left of each row is summed by its own adders.

:func:`build_graph` makes every node one adder of two signed words, written so that Yosys maps it
onto a carry chain: the words are sign-extended to the result's exact width (from range
analysis), the result is a ``keep`` signal (else Yosys's ``alumacc`` merges neighbouring adders
into one multi-operand adder that it maps to plain logic), and the chain has a constant carry-in.
On iCE40 such an adder of ``w`` result bits is ``w`` logic cells with nothing extra for the
chain's carry-in or carry-out, and on Xilinx ``w`` LUTs, subtraction included.

Subtraction is what costs: on iCE40 each inverted bit is a LUT in front of the chain. Every
stored term therefore has a polarity (it holds ``t`` or ``-t``), chosen when it is built so that
it is a sum, not a difference, of its parts wherever the parts allow it; an input's negation,
where a caller can give it cheaply (a ternary input's is one LUT, shared by every use), is a
separate leaf. Each row adds its positive terms in one tree and its negative terms in another
(smallest first, which keeps adders narrow) and subtracts the two once.

Measured (``bench/area.py``, Yosys 0.23, nextpnr-ice40 ``--pack-only``, random ternary layers
with ternary inputs), against per-row compressor trees (``hw.compressor``) and alkaid's best
setting for the same weights:

- 64 -> 16 (685 nonzero weights): 1,770 iCE40 LUT4s in 1,780 logic cells and 1,235 Xilinx
  LUTs; per-row trees 2,128 LUT4s, 2,871 cells, 1,489 LUTs; alkaid (``ternary_fuse=False``, its
  best here) 1,919 LUT4s, 1,931 cells, 1,279 LUTs.
- 256 -> 64 (10,926 nonzero weights): 22,467 LUT4s in 22,506 cells and 16,644 Xilinx LUTs;
  per-row trees 27,714 LUT4s, 43,036 cells, 20,324 LUTs; alkaid 25,493 LUT4s, 25,570 cells,
  18,082 LUTs.

Pipelining: with ``stages = s``, the graph's depth in adders is cut at ``s`` evenly spaced levels
and every value crossing a cut is registered; the results are valid ``s`` cycles after the
inputs.
"""

import collections
import functools
import heapq
import itertools
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Cat, Const, Signal

from hw.pipeline import PipelinedTree, check_stages, shape_for_range

__all__ = [
    "AdderGraph",
    "plan_graph",
    "graph_words",
    "graph_cost",
    "build_graph",
    "Leaf",
    "MIN_USES",
    "MAX_PAIRS",
]

# A shared term used by two rows replaces two adders by one.
MIN_USES = 2

# Column pairs counted per block of columns: the greedy search keeps a count per pair of terms
# found together in a row, which grows with the square of a row's nonzero weights. Wider layers
# are planned in blocks of columns (each block's terms are shared only within it): mnist-mlp's
# 784 -> 256 layer, in four blocks, plans in about 100 s in 230 MB.
MAX_PAIRS = 4_000_000


@dataclass(frozen=True)
class AdderGraph:
    """The plan of a layer's adders.

    Attributes
    ----------
    fan_in : int
        Terms ``0 .. fan_in - 1`` are the inputs.
    items : tuple of (int, int, int)
        Term ``fan_in + k`` is ``term[a] + s * term[b]`` for ``items[k] == (a, b, s)``.
    rows : tuple of tuple of (int, int)
        Per row, the ``(term, sign)`` pairs it adds: together exactly the row's weights.
    """

    fan_in: int
    items: tuple
    rows: tuple

    def expand(self):
        """The weight matrix this graph computes (to check a plan against its weights)."""
        columns = [np.eye(self.fan_in, dtype=np.int64)[i] for i in range(self.fan_in)]
        for a, b, s in self.items:
            columns.append(columns[a] + s * columns[b])
        out = np.zeros((len(self.rows), self.fan_in), dtype=np.int64)
        for j, terms in enumerate(self.rows):
            for term, sign in terms:
                out[j] += sign * columns[term]
        return out

    @property
    def adders(self):
        """Adders the graph builds: one per shared term, and per row one fewer than its terms."""
        return len(self.items) + sum(max(0, len(terms) - 1) for terms in self.rows)


def _blocks(weights, max_pairs):
    """Contiguous column blocks whose rows' pair counts stay within ``max_pairs``."""
    nonzero = (weights != 0).astype(np.int64)
    blocks, start = [], 0
    fan_in = weights.shape[1]
    while start < fan_in:
        stop = start + 1
        counts = nonzero[:, start].copy()
        while stop < fan_in:
            counts += nonzero[:, stop]
            if int((counts * (counts - 1) // 2).sum()) > max_pairs:
                break
            stop += 1
        blocks.append((start, stop))
        start = stop
    return blocks


def plan_graph(weights, *, min_uses=MIN_USES, max_pairs=MAX_PAIRS):
    """Greedy shared terms of a constant ternary matrix: an :class:`AdderGraph`.

    Repeatedly takes the pair of terms ``(a, b)`` with relative sign ``s`` found together in the
    most rows (at least ``min_uses``), makes it a new term and lets those rows use it. Among
    pairs found in as many rows, the one summing fewest columns goes first (its adder is the
    narrowest), then the one found first. Deterministic for given weights.

    Raises
    ------
    ValueError
        For weights that are not a 2-D matrix of -1, 0 and +1, ``min_uses`` below 2 or
        ``max_pairs`` below 1.
    """
    array = np.asarray(weights)
    if array.ndim != 2 or array.size == 0 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"Weights must be a non-empty 2-D integer matrix, not shape {array.shape}")
    bad = (array != -1) & (array != 0) & (array != 1)
    if np.any(bad):
        raise ValueError(f"Weights must be -1, 0 or +1, not {int(array[bad].flat[0])}")
    if not isinstance(min_uses, int) or min_uses < 2:
        raise ValueError(f"Minimum uses must be an integer of at least 2, not {min_uses!r}")
    if not isinstance(max_pairs, int) or max_pairs < 1:
        raise ValueError(f"Maximum pairs must be a positive integer, not {max_pairs!r}")
    weights = np.ascontiguousarray(array, dtype=np.int64)
    # Planned once per matrix: the compiler's cost model and the block both ask for it.
    return _plan(weights.shape, weights.tobytes(), min_uses, max_pairs)


@functools.lru_cache(maxsize=32)
def _plan(shape, data, min_uses, max_pairs):
    weights = np.frombuffer(data, dtype=np.int64).reshape(shape)
    n_rows, fan_in = weights.shape
    rows = [dict() for _ in range(n_rows)]
    items = []
    for start, stop in _blocks(weights, max_pairs):
        block_rows = [
            {int(i): int(weights[j, i]) for i in np.flatnonzero(weights[j, start:stop]) + start}
            for j in range(n_rows)
        ]
        _share(block_rows, items, fan_in, min_uses)
        for row, block in zip(rows, block_rows, strict=True):
            row.update(block)
    return AdderGraph(
        fan_in=fan_in,
        items=tuple(items),
        rows=tuple(tuple(sorted(row.items())) for row in rows),
    )


def _share(rows, items, fan_in, min_uses):
    """Extract shared terms from ``rows`` (dicts term -> sign) in place, appending to ``items``."""

    def key(a, sa, b, sb):
        return (a, b, sa * sb) if a < b else (b, a, sa * sb)

    counts = collections.Counter()
    for row in rows:
        terms = sorted(row)
        for x, a in enumerate(terms):
            for b in terms[x + 1 :]:
                counts[(a, b, row[a] * row[b])] += 1
    # Pairs by count, then by the columns their sum spans (its adder's width grows with it), to
    # find the most used pair, narrowest first, as counts change by one at a time.
    span = collections.defaultdict(lambda: 1)  # term -> columns it sums (1 for an input)
    buckets = collections.defaultdict(lambda: collections.defaultdict(dict))
    for pair, count in counts.items():
        buckets[count][span[pair[0]] + span[pair[1]]][pair] = None
    top = max(buckets, default=0)

    def change(pair, delta):
        nonlocal top
        count = counts[pair]
        width = span[pair[0]] + span[pair[1]]
        if count:
            del buckets[count][width][pair]
            if not buckets[count][width]:
                del buckets[count][width]
        count += delta
        if count:
            counts[pair] = count
            buckets[count][width][pair] = None
            top = max(top, count)
        else:
            del counts[pair]

    users = collections.defaultdict(set)
    for j, row in enumerate(rows):
        for term in row:
            users[term].add(j)
    while top >= min_uses:
        if not buckets[top]:
            top -= 1
            continue
        a, b, s = next(iter(buckets[top][min(buckets[top])]))
        new = fan_in + len(items)
        span[new] = span[a] + span[b]
        items.append((a, b, s))
        for j in sorted(users[a] & users[b]):
            row = rows[j]
            sa, sb = row[a], row[b]
            if sb != s * sa:
                continue
            del row[a], row[b]
            change(key(a, sa, b, sb), -1)
            for c, sc in row.items():
                change(key(a, sa, c, sc), -1)
                change(key(b, sb, c, sc), -1)
                change(key(new, sa, c, sc), +1)
            row[new] = sa
            users[a].discard(j)
            users[b].discard(j)
            users[new].add(j)


# --- hardware ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    """An input of the graph: ``value`` (an Amaranth value) lies in ``[lo, hi]``.

    ``negated``, optional, is a :class:`Leaf` holding ``-value``, cheaper to use than a
    subtraction (a ternary input's is one LUT). ``zeros``: how many low bits of ``value`` (and
    of its negation) are always 0, as for an input shifted left by a digit plane's exponent.
    ``depth``: adders between the accelerator's input and ``value`` (1 for an intN input's
    negation, a carry chain of its own), so that pipeline stages count them.
    Planning (:func:`graph_words`) needs only the ranges and ``zeros``: ``value`` may be None
    there.
    """

    value: object
    lo: int
    hi: int
    negated: "Leaf | None" = None
    zeros: int = 0
    depth: int = 0


def _const_zeros(value):
    """Low zero bits of a constant (any number of them for 0)."""
    return (value & -value).bit_length() - 1 if value else _ALL_ZEROS


_ALL_ZEROS = 1 << 20


class _Word:
    """A value of the graph: its range, its low zero bits, its depth in adders, and once built
    its signal.

    A leaf word has ``leaf`` set and no operands; an adder word has operands ``a`` and ``b`` and
    holds ``a + b``, or ``a - b`` with ``subtract``; a constant word has ``sig`` from the start.
    ``zeros`` low bits of the value are always 0 (the inputs of shifted digit planes).
    """

    __slots__ = ("lo", "hi", "zeros", "depth", "a", "b", "subtract", "leaf", "sig")

    def __init__(self, lo, hi, *, zeros=0, a=None, b=None, subtract=False, leaf=None, sig=None):
        self.lo, self.hi, self.zeros = lo, hi, zeros
        self.a, self.b, self.subtract, self.leaf, self.sig = a, b, subtract, leaf, sig
        self.depth = 0 if a is None else 1 + max(a.depth, b.depth)

    @classmethod
    def add(cls, a, b, subtract=False):
        zeros = min(a.zeros, b.zeros)
        if subtract:
            return cls(a.lo - b.hi, a.hi - b.lo, zeros=zeros, a=a, b=b, subtract=True)
        return cls(a.lo + b.lo, a.hi + b.hi, zeros=zeros, a=a, b=b)

    @property
    def width(self):
        return shape_for_range(self.lo, self.hi).width

    @property
    def low(self):
        """An adder's low result bits that need no cell: below ``low`` one operand is 0 there,
        so the result's bits are the other operand's (``a - b``: ``a``'s, below ``b``'s zeros).
        The carry chain starts at bit ``low``."""
        if self.a is None:
            return 0
        start = self.b.zeros if self.subtract else max(self.a.zeros, self.b.zeros)
        return min(start, self.width)

    @property
    def cells(self):
        """The adder's carry-chain cells: its result bits from :attr:`low` up."""
        return self.width - self.low


def _tree(words, adder):
    """Sum ``words`` narrowest first (a Huffman order) with ``adder``: the root, or None."""
    order = itertools.count()
    queue = [(w.width, next(order), w) for w in words]
    heapq.heapify(queue)
    while len(queue) > 1:
        _, _, a = heapq.heappop(queue)
        _, _, b = heapq.heappop(queue)
        node = adder(a, b)
        heapq.heappush(queue, (node.width, next(order), node))
    return queue[0][2] if queue else None


def graph_words(graph, leaves, constants=None):
    """Plan the graph's words on ``leaves``: ``(roots, adders)``.

    ``roots`` has per row its sum's word (None for a row of zeros); ``adders`` every adder word,
    each one carry-chain adder of ``word.width`` result bits. Needs the leaves' ranges only.
    """
    if len(leaves) != graph.fan_in:
        raise ValueError(f"The graph has {graph.fan_in} inputs, not {len(leaves)} leaves")
    constants = [0] * len(graph.rows) if constants is None else [int(c) for c in constants]
    adders = []
    inputs = {}  # (leaf index, negated) -> _Word

    def leaf_word(i, negated):
        if (i, negated) not in inputs:
            leaf = leaves[i].negated if negated else leaves[i]
            zeros = leaves[i].zeros
            word = _Word(leaf.lo, leaf.hi, zeros=zeros, leaf=(i, negated))
            word.depth = leaf.depth
            inputs[(i, negated)] = word
        return inputs[(i, negated)]

    def adder(a, b, subtract=False):
        word = _Word.add(a, b, subtract)
        adders.append(word)
        return word

    stored = {}  # term -> (word, polarity): the word holds polarity * term

    def term(t, polarity):
        """A word and the sign it still needs, together ``polarity * term t``."""
        if t in stored:
            word, own = stored[t]
            return word, polarity * own
        if polarity < 0 and leaves[t].negated is not None:
            return leaf_word(t, True), 1
        return leaf_word(t, False), polarity

    for k, (a, b, s) in enumerate(graph.items):
        # Follow a built part's polarity, so that the term is a sum of its parts if it can be.
        if a in stored:
            polarity = stored[a][1]
        elif b in stored:
            polarity = stored[b][1] * s
        else:
            polarity = 1
        wa, sa = term(a, polarity)
        wb, sb = term(b, polarity * s)
        if sa > 0:
            word = adder(wa, wb, sb < 0)
        elif sb > 0:
            word = adder(wb, wa, True)
        else:
            word, polarity = adder(wa, wb), -polarity
        stored[graph.fan_in + k] = (word, polarity)

    roots = []
    for terms, constant in zip(graph.rows, constants, strict=True):
        plus, minus = [], []
        for t, sign in terms:
            word, sign = term(t, sign)
            (plus if sign > 0 else minus).append(word)
        if constant:
            value = abs(constant)
            sig = Const(value, shape_for_range(value, value))
            word = _Word(value, value, zeros=_const_zeros(value), sig=sig)
            (plus if constant > 0 else minus).append(word)
        p, n = _tree(plus, adder), _tree(minus, adder)
        if n is None:
            roots.append(p)
        elif p is None:
            roots.append(adder(_Word(0, 0, zeros=_ALL_ZEROS, sig=Const(0, 1)), n, True))
        else:
            roots.append(adder(p, n, True))
    return roots, adders


def graph_cost(graph, leaves, constants=None):
    """Carry-chain cells of every adder of the graph on ``leaves``: its size.

    On iCE40 an adder of ``w`` result bits is ``w`` logic cells (plus a LUT per inverted bit of
    a subtrahend), on Xilinx ``w`` LUTs; result bits below the chain (:attr:`_Word.low`, where
    one operand's low bits are 0, as a shifted digit plane's are) are wires and cost nothing.
    """
    _, adders = graph_words(graph, leaves, constants)
    return sum(word.cells for word in adders)


class _Emitter(PipelinedTree):
    def __init__(self, m, leaves, **kwargs):
        super().__init__(m, **kwargs)
        self.leaves = leaves

    def at(self, word, stage):
        """The word's signal, delayed to be valid in ``stage`` (a constant needs no register)."""
        if isinstance(word.sig, Const):
            return word.sig
        return self.delay(word, word.sig, stage)

    def emit(self, word):
        """Build ``word`` and everything it depends on (iteratively: graphs can be deep)."""
        todo = [word]
        while todo:
            node = todo[-1]
            if node.sig is not None:
                todo.pop()
                continue
            if node.leaf is not None:
                i, negated = node.leaf
                leaf = self.leaves[i].negated if negated else self.leaves[i]
                label = f"{self.name}_x{i}{'n' if negated else ''}"
                node.sig = Signal(shape_for_range(leaf.lo, leaf.hi), name=label)
                self.m.d.comb += node.sig.eq(leaf.value)
                continue
            pending = [w for w in (node.a, node.b) if w.sig is None]
            if pending:
                todo.extend(pending)
                continue
            todo.pop()
            stage = self.stage(node)
            width = node.width
            a = _extend(self.at(node.a, stage), width)
            b = _extend(self.at(node.b, stage), width)
            # One adder of the result's exact width, with a constant carry-in. `keep` stops
            # Yosys (alumacc) from merging it with its neighbours into a multi-operand adder,
            # which it would map to plain logic rather than a carry chain. Below `low` one
            # operand is 0: those bits are the other's, wired past the chain.
            low = node.low
            below = a[:low] if node.subtract or node.a.zeros <= node.b.zeros else b[:low]
            hi_a, hi_b = a[low:], b[low:]
            total = (hi_a - hi_b if node.subtract else hi_a + hi_b)[: width - low]
            sig = Signal(
                shape_for_range(node.lo, node.hi),
                name=f"{self.name}_a{next(self.count)}",
                attrs={"keep": 1},
            )
            self.m.d.comb += sig.eq(Cat(below, total) if low else total)
            node.sig = sig


def _extend(sig, width):
    """``sig`` sign- or zero-extended (by its shape) to ``width`` bits, as an unsigned value."""
    bits = sig.as_unsigned()
    if len(bits) >= width:
        return bits[:width]
    fill = bits[-1] if sig.shape().signed else Const(0, 1)
    return Cat(bits, *([fill] * (width - len(bits))))


def build_graph(m, graph, leaves, *, constants=None, stages=0, enable=None, domain="sync", name):
    """Build ``graph`` on ``leaves``; return one signal per row, valid ``stages`` cycles later.

    Parameters
    ----------
    m : Module
    graph : AdderGraph
    leaves : list of Leaf
        One per input, ``graph.fan_in`` of them.
    constants : list of int, optional
        Added to each row's sum.
    stages : int
        Pipeline registers on every path.
    enable : Value, optional
        Pipeline registers load only while this is 1.

    Returns
    -------
    list of Value
        Row ``j``'s exact sum, in the narrowest shape of its range.
    """
    check_stages(stages)
    roots, _ = graph_words(graph, leaves, constants)
    total_depth = max([r.depth for r in roots if r is not None] + [0])
    emitter = _Emitter(
        m,
        leaves,
        stages=stages,
        total_depth=total_depth,
        enable=enable,
        domain=domain,
        name=name,
    )
    results = []
    for j, root in enumerate(roots):
        if root is None:
            results.append(Const(0, 1))
            continue
        emitter.emit(root)
        # delayed to the last stage by the same shared registers as any other use of the word
        sig = emitter.at(root, stages)
        out = Signal(shape_for_range(root.lo, root.hi), name=f"{name}_{j}")
        m.d.comb += out.eq(sig)
        results.append(out)
    return results
