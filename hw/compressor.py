"""Sums of bits and words built as compressor trees on carry chains.

A sum is described as a :class:`BitHeap`: single bits of weight ``2**k``, unsigned or signed
operands (optionally negated and shifted), sub-sums that several heaps may share, and an integer
constant. :func:`build_sums` turns one or more heaps into hardware inside ``elaborate`` and
returns, for each heap, a signal holding its exact sum in the narrowest shape that its range
needs.

How the tree is built, and why
------------------------------
Everything is first made unsigned: a signed operand is its bits with the sign bit inverted,
minus a constant; a negated operand is its inverted bits plus a constant. The constants add up
to one integer, whose set bits (modulo the result's width) join the heap as constant bits. The
unsigned words are then combined two at a time, smallest first (a Huffman order, which keeps
adders narrow), each adder taking a third, single bit of its lowest column as its carry-in.

On iCE40, Yosys maps an adder of 3 or more result bits onto a ``SB_CARRY`` chain, one LUT4 per
bit, so ``a + b + c`` of two ``k``-bit words and a bit costs ``k`` LUTs and removes ``k`` bits
from the heap: one bit per LUT, against one bit per two LUTs for a full adder in plain logic.
Single bits beyond the carry-ins the adders can use are first grouped by three into 2-bit words
(``1 + 1 + carry-in`` adders). 6-LUT fabrics (ECP5, Xilinx) map the same adders onto their
carry chains.

What a device holds is logic cells, not LUT4s: an iCE40 logic cell has one LUT4 and one carry,
and a carry chain's carry-in and carry-out each take a cell of their own when nextpnr packs it.
A ``1 + 1 + carry-in`` adder on a chain thus takes three cells for one bit removed, where a full
adder in plain logic takes two LUTs. ``bit_adders="logic"`` (the default) builds adders of single
bits as half and full adders in logic: nextpnr-ice40's packed cells for digits-mlp's first layer
fell from 3,465 to 2,785, and for a random ternary 64 -> 16 layer from 3,088 to 2,571, while
Yosys's LUT4 count rose from 1,687 to 2,044 on the latter. ``bit_adders="carry"`` keeps them on
carry chains: fewest Yosys LUT4s on iCE40, and fewest LUTs on Xilinx (1,515 against 1,693).

Each adder is written as one ``+`` whose result is a ``keep`` signal: otherwise Yosys's
``alumacc`` merges the whole tree into one multi-operand adder and maps it to plain logic, twice
as large. Inverted bits cost a LUT each in front of a carry chain, so callers
should prefer heaps of plain bits (see :mod:`hw.dotproduct`, which subtracts one word per row
instead of inverting each negative bit). The sum is exact modulo ``2**width``: no adder is wider
than the result needs, and bits of weight ``2**width`` or more are dropped.

Measured with Yosys 0.23 (``bench/area.py``): a ternary row of fan-in 256 (176 nonzero
weights) takes about 2.1 LUT4s per nonzero weight on iCE40 and 2.1 LUTs on Xilinx, against
7.8 for the plain ``sum()`` and 4.0-7.3 for balanced trees of ``+`` that Yosys maps to logic.

Pipelining: with ``stages = s``, the tree's depth (in adders) is cut at ``s`` evenly spaced
levels and every value crossing a cut is registered; the result is valid ``s`` cycles after its
operands (:func:`tree_latency`).
"""

import heapq
import itertools

from amaranth.hdl import Cat, Const, Shape, Signal, unsigned

from hw.pipeline import PipelinedTree, check_stages, shape_for_range

__all__ = [
    "BitHeap",
    "signed_bit_heap",
    "build_sums",
    "build_sum",
    "CARRY_IN",
    "BIT_ADDERS",
    "check_carry_in",
    "check_bit_adders",
]


CARRY_IN = ("constant", "repeat")
BIT_ADDERS = ("logic", "carry")


def check_carry_in(carry_in):
    """Raise ``ValueError`` unless ``carry_in`` is one of :data:`CARRY_IN`."""
    if carry_in not in CARRY_IN:
        raise ValueError(f"Carry-in must be one of {CARRY_IN}, not {carry_in!r}")


def check_bit_adders(bit_adders):
    """Raise ``ValueError`` unless ``bit_adders`` is one of :data:`BIT_ADDERS`."""
    if bit_adders not in BIT_ADDERS:
        raise ValueError(f"Bit adders must be one of {BIT_ADDERS}, not {bit_adders!r}")


class _Node:
    """An unsigned word of the tree: ``value`` (``width`` bits) contributes ``value << shift``."""

    __slots__ = ("value", "shift", "width", "max", "depth", "inputs", "sig")
    _ids = itertools.count()

    def __init__(self, *, shift, width, max, depth, value=None, inputs=None):
        self.value = value  # an Amaranth value for leaves, None for adders
        self.shift = shift
        self.width = width
        self.max = max
        self.depth = depth
        self.inputs = inputs  # (a, b, cin) for adders
        self.sig = None

    @property
    def top(self):
        """Largest value contributed, with its weight."""
        return self.max << self.shift


class BitHeap:
    """Weighted bits, operands, shared sub-sums and a constant, to be summed exactly.

    The sum's range (:attr:`min`, :attr:`max`) assumes the bits and operands independent; a
    caller that knows a tighter range (e.g. ``pos`` and ``neg`` of one ternary value are never
    both set) passes it to :func:`build_sums`, which then computes the sum modulo that range's
    width.
    """

    def __init__(self):
        self._leaves = []  # (value, shift, width, max)
        self._subs = []  # (BitHeap, negate)
        self.constant = 0
        self._min = 0
        self._max = 0

    @property
    def min(self):
        return self._min

    @property
    def max(self):
        return self._max

    def add_constant(self, value):
        """Add the integer ``value``."""
        value = int(value)
        self.constant += value
        self._min += value
        self._max += value

    def add_bit(self, bit, weight=0):
        """Add the 1-bit value ``bit`` with weight ``2**weight``."""
        self._leaves.append((bit, weight, 1, 1))
        self._max += 1 << weight

    def add_bits(self, bits, weight=0):
        """Add each bit of ``bits`` with weight ``2**weight`` (a popcount of ``bits``)."""
        for k in range(len(bits)):
            self.add_bit(bits[k], weight)

    def add_operand(self, value, *, shift=0, negate=False, split=False):
        """Add ``value`` (or ``-value``) times ``2**shift``; its shape gives its range.

        With ``split``, its bits enter the heap one by one (a bit-plane form) instead of as a
        word; which is smaller depends on the rest of the heap.
        """
        shape = Shape.cast(value.shape())
        width = shape.width
        if width == 0:
            return
        if shape.signed:
            lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
            # v = u - 2**(w-1), u = v with its sign bit inverted.
            bits = Cat(value[: width - 1], ~value[width - 1])
            offset = -(1 << (width - 1))
        else:
            lo, hi = 0, (1 << width) - 1
            bits = value.as_unsigned()
            offset = 0
        if negate:
            # -(u + c) = ~u + 1 - 2**w - c, with ~u the w-bit complement.
            bits = ~bits
            offset = 1 - (1 << width) - offset
            lo, hi = -hi, -lo
        self.constant += offset << shift
        self._min += lo << shift
        self._max += hi << shift
        if split or width == 1:
            for k in range(width):
                self._leaves.append((bits[k], shift + k, 1, 1))
        else:
            self._leaves.append((bits, shift, width, (1 << width) - 1))

    def add_word(self, value, *, shift=0, max=None):
        """Add the unsigned ``value`` times ``2**shift``, known to be at most ``max``."""
        width = len(value)
        top = (1 << width) - 1 if max is None else int(max)
        self._leaves.append((value, shift, width, top))
        self._max += top << shift

    def add_heap(self, heap, *, negate=False):
        """Add the sum of another heap, computed once however many heaps add it."""
        if not isinstance(heap, BitHeap):
            raise TypeError(f"Heap must be a BitHeap, not {heap!r}")
        self._subs.append((heap, negate))
        if negate:
            self._min -= heap.max
            self._max -= heap.min
        else:
            self._min += heap.min
            self._max += heap.max


def signed_bit_heap(bits, constant=0):
    """A :class:`BitHeap` of ``sum(sign * 2**exponent * bit) + constant``.

    Parameters
    ----------
    bits : iterable of (Value, int, int)
        ``(bit, exponent, sign)``, ``sign`` +1 or -1, as :func:`hw.dotproduct.value_bits`
        lists them.
    constant : int

    The bits of sign +1 enter the heap as they are; those of sign -1 enter a second heap that
    is subtracted as one word, so that no bit is inverted on its own (an inverter in front of
    a carry chain costs a LUT; the word's inversion is one per heap).
    """
    heap, minus = BitHeap(), BitHeap()
    heap.add_constant(constant)
    for bit, exponent, sign in bits:
        if sign not in (-1, 1):
            raise ValueError(f"Sign must be -1 or +1, not {sign!r}")
        (heap if sign > 0 else minus).add_bit(bit, exponent)
    if minus.max > 0:
        heap.add_heap(minus, negate=True)
    return heap


class _Builder:
    def __init__(self, *, full_adders=True, fold_constant=True):
        self.full_adders = full_adders
        self.fold_constant = fold_constant
        self.nodes = []  # every adder node, in creation order
        self.words = {}  # id(BitHeap) -> (node or None, constant)

    # --- abstract tree --------------------------------------------------------------------------
    def _adder(self, a, b, cin):
        shift = min(a.shift, b.shift)
        top = a.top + b.top + (cin.top if cin is not None else 0)
        top >>= shift
        node = _Node(
            shift=shift,
            width=max(1, top.bit_length()),
            max=top,
            depth=1 + max(a.depth, b.depth, cin.depth if cin is not None else 0),
            inputs=(a, b, cin),
        )
        self.nodes.append(node)
        return node

    def reduce(self, nodes, width_limit=None):
        """Combine unsigned nodes into one node (or None for an empty heap)."""
        words = [n for n in nodes if n.width > 1]
        bits = {}
        for n in nodes:
            if n.width == 1:
                bits.setdefault(n.shift, []).append(n)
        if self.full_adders:
            # Group single bits by three into 2-bit words, keeping as carry-ins about as many
            # bits as there will be adders starting at their column.
            for col in sorted(bits):
                column = bits[col]
                here = sum(1 for w in words if w.shift == col)
                groups = max(0, -(-(len(column) - here + 1) // 4))
                for _ in range(groups):
                    if len(column) >= 3:
                        a, b, c = column.pop(), column.pop(), column.pop()
                        words.append(self._adder(a, b, c))
                    elif len(column) == 2:
                        a, b = column.pop(), column.pop()
                        words.append(self._adder(a, b, None))
        order = itertools.count()
        queue = [(w.top, next(order), w) for w in words]
        heapq.heapify(queue)
        leftovers = []
        for col in sorted(bits):
            leftovers.extend(bits[col])
        while True:
            if len(queue) < 2:
                if not leftovers:
                    break
                # Too few words left to take the bits as carry-ins: make them words.
                bit = leftovers.pop(0)
                bits[bit.shift].remove(bit)
                heapq.heappush(queue, (bit.top, next(order), bit))
                continue
            _, _, a = heapq.heappop(queue)
            _, _, b = heapq.heappop(queue)
            col = max(a.shift, b.shift)
            cin = None
            column = bits.get(col)
            if column:
                cin = column.pop()
                leftovers.remove(cin)
            node = self._adder(a, b, cin)
            if width_limit is not None and node.shift + node.width > width_limit:
                node.width = max(1, width_limit - node.shift)
                node.max = min(node.max, (1 << node.width) - 1)
            heapq.heappush(queue, (node.top, next(order), node))
        if not queue:
            return None
        return queue[0][2]

    def heap(self, heap, width_limit=None):
        """The (node, constant) of a heap, built once per heap object."""
        key = id(heap)
        if key in self.words and width_limit is None:
            return self.words[key]
        nodes = []
        constant = heap.constant
        for value, shift, width, top in heap._leaves:
            if width_limit is not None and shift >= width_limit:
                continue  # a multiple of 2**width: nothing modulo it
            nodes.append(_Node(value=value, shift=shift, width=width, max=top, depth=0))
        for sub, negate in heap._subs:
            node, sub_constant = self.heap(sub)
            if node is None:
                constant += -sub_constant if negate else sub_constant
                continue
            if negate:
                # -(u + c) = ~u + 1 - 2**w - c, u the node's w-bit word shifted.
                inverted = _Node(
                    value=None,
                    shift=node.shift,
                    width=node.width,
                    max=(1 << node.width) - 1,
                    depth=node.depth,
                    inputs=("not", node),
                )
                self.nodes.append(inverted)
                nodes.append(inverted)
                constant += ((1 - (1 << node.width)) << node.shift) - sub_constant
            else:
                nodes.append(node)
                constant += sub_constant
        if width_limit is not None and self.fold_constant:
            # The constant's set bits (modulo the result's width) join the heap, where most
            # serve as free carry-ins, instead of costing a final adder.
            constant &= (1 << width_limit) - 1
            for k in range(width_limit):
                if constant >> k & 1:
                    nodes.append(_Node(value=Const(1, 1), shift=k, width=1, max=1, depth=0))
            constant = 0
        result = (self.reduce(nodes, width_limit), constant)
        if width_limit is None:
            self.words[key] = result
        return result


class _Emitter(PipelinedTree):
    def __init__(self, m, *, carry_in, bit_adders, **kwargs):
        super().__init__(m, **kwargs)
        self.carry_in = carry_in
        self.bit_adders = bit_adders

    def at(self, node, stage):
        """The node's word, delayed to be valid in ``stage``."""
        return self.delay(node, self.emit(node), stage)

    def emit(self, node):
        if node.sig is not None:
            return node.sig
        if node.inputs is None:
            sig = Signal(unsigned(node.width), name=f"{self.name}_in{next(self.count)}")
            self.m.d.comb += sig.eq(node.value)
            node.sig = sig
            return sig
        stage = self.stage(node)
        if node.inputs[0] == "not":
            (_, src) = node.inputs
            sig = Signal(unsigned(node.width), name=f"{self.name}_n{next(self.count)}")
            self.m.d.comb += sig.eq(~self.at(src, stage))
            node.sig = sig
            return sig
        a, b, cin = node.inputs
        if self.bit_adders == "logic" and a.width == b.width == 1 and a.shift == b.shift:
            return self._bit_adder(node, stage)
        if a.shift > b.shift:
            a, b = b, a
        # a starts lowest: its bits below b's column pass through.
        av = self.at(a, stage)
        bv = self.at(b, stage)
        low = b.shift - a.shift
        if cin is None:
            total = av[low:] + bv
        else:
            carry = self.at(cin, stage)
            if self.carry_in == "repeat":
                # (2a + c) + (2b + c) = 2(a + b + c): the extra low position sums to a
                # constant 0, which costs no LUT on 6-LUT fabrics (a carry cell on iCE40).
                total = (Cat(carry, av[low:]) + Cat(carry, bv))[1:]
            else:
                # (2a + c) + (2b + 1) = 2(a + b + c) + 1: iCE40's carry cell of the extra
                # position has a constant input and folds away (an inverter on 6-LUT fabrics).
                total = (Cat(carry, av[low:]) + Cat(Const(1, 1), bv))[1:]
            # Either way one adder with a carry-in: written as two additions, Yosys would
            # merge them with their neighbours.
        # `keep` stops Yosys (alumacc) from merging the tree's adders into one multi-operand
        # adder, which it would map to plain logic rather than carry chains.
        comb = Signal(
            unsigned(node.width), name=f"{self.name}_s{next(self.count)}", attrs={"keep": 1}
        )
        if low:
            below = av[:low] if a.width >= low else Cat(av, Const(0, low - a.width))
            self.m.d.comb += comb.eq(Cat(below, total))
        else:
            self.m.d.comb += comb.eq(total)
        node.sig = comb
        return comb

    def _bit_adder(self, node, stage):
        # Two or three bits of one column: a half or full adder in plain logic (two LUTs).
        # On a carry chain the same sum would take three iCE40 logic cells, since a chain's
        # carry-in and carry-out each cost a cell of their own, and one LUT more on 6-LUT
        # fabrics (bench/area.py).
        inputs = [n for n in node.inputs if n is not None]
        ones = sum(1 for n in inputs if _is_one(n))
        bits = [self.at(n, stage) for n in inputs if not _is_one(n)]
        # Constant ones (from the heap's constant) are folded here rather than left to the
        # Verilog back end, whose constant folding names its inverters like a later Yosys run
        # does (``$auto$rtlil.cc:...:Not$2``): the two collide when a module is synthesized with
        # its hierarchy kept.
        if len(bits) == 3:
            a, b, c = bits
            total = Cat(a ^ b ^ c, (a & b) | (a & c) | (b & c))
        elif len(bits) == 2 and ones:
            a, b = bits
            total = Cat(~(a ^ b), a | b)
        elif len(bits) == 2:
            a, b = bits
            total = Cat(a ^ b, a & b)
        elif len(bits) == 1 and ones == 1:
            total = Cat(~bits[0], bits[0])
        elif len(bits) == 1:
            total = Cat(bits[0], Const(1, 1))  # x + 1 + 1 = x + 2
        else:
            total = Const(ones, 2)
        sig = Signal(unsigned(node.width), name=f"{self.name}_f{next(self.count)}")
        self.m.d.comb += sig.eq(total)
        node.sig = sig
        return sig


def _is_one(node):
    """Whether ``node`` is a constant 1 bit of the heap."""
    return node.inputs is None and isinstance(node.value, Const) and node.value.value == 1


def build_sums(
    m,
    heaps,
    *,
    stages=0,
    ranges=None,
    domain="sync",
    enable=None,
    name="sum",
    carry_in="constant",
    bit_adders="logic",
    full_adders=True,
    fold_constant=True,
):
    """Build the compressor trees summing ``heaps``; return one signal per heap.

    Sub-heaps added to several heaps (:meth:`BitHeap.add_heap`) are built once and shared.

    Parameters
    ----------
    m : Module
        Where the tree's logic and registers go.
    heaps : list of BitHeap
    stages : int
        Pipeline registers on every path; the sums are valid ``stages`` cycles after the
        operands (``tree_latency(stages)``).
    ranges : list of (int, int), optional
        The true range of each sum, if narrower than the heap's own (``heap.min, heap.max``).
        Each result has the narrowest shape holding its range (:func:`shape_for_range`).
    domain : str
        Clock domain of the pipeline registers.
    enable : Value, optional
        Pipeline registers load only while this is 1 (a stall holds the whole pipeline).
    carry_in : str
        How an adder's carry-in bit is written: ``"constant"`` (fewest cells on iCE40) or
        ``"repeat"`` (fewest LUTs on 6-LUT fabrics: ECP5, Xilinx). Both are exact.
    bit_adders : str
        How adders of single bits (two or three bits of one column) are built: ``"logic"``
        (default; a half or full adder in two LUTs: fewest iCE40 logic cells, since a carry
        chain's carry-in and carry-out take cells of their own) or ``"carry"`` (on a carry
        chain like every other adder: fewest Yosys LUT4s on iCE40, fewest LUTs on Xilinx).

    Returns
    -------
    list of Signal
    """
    check_stages(stages)
    check_carry_in(carry_in)
    check_bit_adders(bit_adders)
    heaps = list(heaps)
    if ranges is None:
        ranges = [(h.min, h.max) for h in heaps]
    shapes = [shape_for_range(lo, hi) for lo, hi in ranges]
    builder = _Builder(full_adders=full_adders, fold_constant=fold_constant)
    roots = []
    for heap, shape in zip(heaps, shapes, strict=True):
        roots.append(builder.heap(heap, width_limit=shape.width))
    total_depth = max([n.depth for n, _ in roots if n is not None] + [0])
    emitter = _Emitter(
        m,
        domain=domain,
        enable=enable,
        name=name,
        stages=stages,
        total_depth=total_depth,
        carry_in=carry_in,
        bit_adders=bit_adders,
    )
    results = []
    for j, ((node, constant), shape) in enumerate(zip(roots, shapes, strict=True)):
        width = shape.width
        mask = (1 << width) - 1
        out = Signal(shape, name=f"{name}_{j}")
        if node is None:
            value = Const(constant & mask, width)
            for s in range(stages):
                value = emitter.register(value, f"{name}_{j}_c{s}", unsigned(width))
        else:
            value = emitter.at(node, emitter.stage(node))
            if node.shift:
                value = Cat(Const(0, node.shift), value)
            # Register before the constant is added when the tree has registers left over,
            # so that the constant adder is not on the last stage's longest path.
            value = value + Const(constant & mask, width) if constant & mask else value
            tmp = Signal(unsigned(width), name=f"{name}_{j}_r")
            m.d.comb += tmp.eq(value)
            value = tmp
            for s in range(emitter.stage(node), stages):
                value = emitter.register(value, f"{name}_{j}_p{s}", unsigned(width))
        m.d.comb += out.eq(value)
        results.append(out)
    return results


def build_sum(m, heap, *, stages=0, range=None, **kwargs):
    """:func:`build_sums` for one heap; returns its signal."""
    ranges = None if range is None else [range]
    return build_sums(m, [heap], stages=stages, ranges=ranges, **kwargs)[0]
