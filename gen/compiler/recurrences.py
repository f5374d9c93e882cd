"""The cycle model's blocks: when each kind of block takes and offers its tokens.

Every stream between two blocks carries tokens in order; each class here states, for one kind
of block, when it takes an input token and when it offers an output token, in terms of earlier
transfers on both sides (docs/accelerator.md gives the table). :mod:`gen.compiler.cycles`
chooses the blocks that stand for an accelerator's stages and evaluates the recurrences.
"""

__all__ = [
    "Pending",
    "Link",
    "Block",
    "Pipeline",
    "Folded",
    "FoldedCredit",
    "Skid",
    "Serializer",
    "Deserializer",
    "DisjointPool",
    "Window",
]

# Every link between two blocks carries tokens (whole vectors, pixels or windows) in order. For
# token ``n`` of a link, ``offer[n]`` is the first clock edge at which its producer offers it
# (``valid`` high) and ``transfer[n]`` the edge at which its consumer takes it. Each block kind
# below states two recurrences, read off its Verilog-level behaviour:
#
# - ``accept(n, offer)``: the edge at which the block takes input token ``n`` offered from
#   ``offer`` on (the first edge from ``offer`` on at which its ``ready`` is high);
# - ``emit(n)``: the edge from which it offers output token ``n``.
#
# Both depend only on earlier transfers on either side (back-pressure included), so the times
# of all tokens follow by evaluating the recurrences in dependency order (max-plus algebra).
# Edges count from 1, as in the simulator's experiments; a register written at edge ``e`` is seen at
# edge ``e + 1``.


class Pending(Exception):
    """A recurrence needs a time that is not known yet (evaluate something else first)."""


class Link:
    """Token times on one stream: ``offer`` and ``transfer`` edges, in token order."""

    def __init__(self, count):
        self.count = count
        self.offer = []
        self.transfer = []

    def offered(self, n):
        if n >= len(self.offer):
            raise Pending
        return self.offer[n]

    def taken(self, n):
        if n < 0:
            return 0  # before the first token: nothing to wait for
        if n >= len(self.transfer):
            raise Pending
        return self.transfer[n]


class Block:
    """A block of the timing model: ``ratio`` output tokens per input token (a fraction)."""

    ratio = (1, 1)
    i = o = None

    def accept(self, n, offer):
        raise NotImplementedError

    def emit(self, n):
        raise NotImplementedError


class _Stalls:
    """Ordered, disjoint stall intervals ``[begin(k), end(k))`` of one block's advance enable.

    Interval ``k`` belongs to token ``k``; a question about token ``n`` considers the
    intervals of tokens before it, whose ``begin`` the block must know (else it raises
    :class:`Pending`), as ``end`` may. ``first`` skips intervals that ended before any edge
    still asked about.
    """

    def __init__(self, begin, end):
        self.begin, self.end = begin, end
        self.first = 0

    def forget_before(self, edge):
        """No edge before ``edge`` will be asked about again."""
        try:
            while self.end(self.first) <= edge:
                self.first += 1
        except Pending:  # that interval is still open, or not yet known: keep it
            pass

    def nth_free_edge(self, edge, count, before):
        """The ``count``-th edge after ``edge`` (``edge`` for 0) outside the intervals of the
        tokens before ``before``."""
        if count == 0:
            return edge
        k = self.first
        while k < before and (begin := self.begin(k)) <= edge + count:
            end = self.end(k)
            if end > edge + 1:  # the interval covers edges after ``edge``
                count -= max(0, begin - edge - 1)  # free edges before it
                edge = max(edge, end - 1)
            k += 1
        return edge + count


class Pipeline(Block):
    """A ``stages``-deep pipeline that stalls as a whole (``hw.compressor.pipeline_control``).

    Used for :class:`~hw.dotproduct.DotProduct`, :class:`~hw.threshold.ThresholdUnit`,
    :class:`~hw.argmax.Argmax` and the maximum register of a windowed max pool, with
    ``stages`` their ``latency``. Everything moves at an edge unless a result waits at the
    output (``o.valid`` without ``o.ready``): the stall edges are ``[offer[m], transfer[m])``
    of the output tokens. Hence, counting only the edges outside those:

    - ``accept(n)`` = the first such edge from ``offer`` on: ``i.ready`` is the advance enable;
    - ``emit(n)`` = one edge after the ``stages``-th such edge counted from the input transfer
      (the transfer itself loads the first register): ``transfer + stages`` without stalls.
    """

    def __init__(self, stages):
        self.stages = stages
        self.stalls = _Stalls(lambda m: self.o.offered(m), lambda m: self.o.taken(m))

    def accept(self, n, offer):
        edge = self.stalls.nth_free_edge(offer - 1, 1, n)
        # Later questions start at this edge or, for a token still inside the pipeline (its
        # output not yet known), at that token's transfer: forget only the stalls before both.
        inside = len(self.o.offer)
        self.stalls.forget_before(self.i.taken(inside) if inside < n else edge)
        return edge

    def emit(self, n):
        return self.stalls.nth_free_edge(self.i.taken(n), self.stages - 1, n) + 1


class Folded(Block):
    """:class:`~hw.folded.FoldedMatrixVector`: ``ii`` issue cycles per vector, then ``depth``.

    ``ii`` is the engine's ``initiation_interval`` and ``depth = latency - ii`` its cycles after
    the last issue (ROM read, sums, accumulate, output register). A vector waits in the load
    buffer from its transfer; it starts issuing at the first advancing edge ``start[n]`` after
    both its transfer and the previous vector's last issue ``last[n-1]``, and issues at ``ii``
    advancing edges. ``depth - 2`` advancing edges later its result is complete and is written
    at the next edge at which the output register is free: ``finish[n] = max(complete + 1,
    transfer_out[n-1])``; the whole engine stalls in between (the stall edges
    ``[complete + 1, finish)``). Then:

    - ``accept(n) = max(offer, start[n-1] + 1)``: the load buffer frees when its vector starts
      and, its ready being a register, takes the next one an edge later (``start[n-1]`` itself
      when ``ii`` is 1, where ready also looks at the issue);
    - ``emit(n) = finish[n] + 1``, which is ``transfer + latency`` in an idle engine.
    """

    def __init__(self, ii, depth):
        self.ii = ii
        self.depth = depth
        self.start, self.last, self.complete, self.finish = [], [], [], []
        self.stalls = _Stalls(self._stall_begin, self._stall_end)

    def _stall_begin(self, m):
        if m >= len(self.complete):
            raise Pending
        return self.complete[m] + 1

    def _stall_end(self, m):
        if m >= len(self.finish):
            raise Pending  # its finish waits on the output, not yet known
        return self.finish[m]

    def _schedule(self, n):
        """Fill ``start``, ``last``, ``complete``, ``finish`` of vector ``n`` (as far as known),
        after those of the vectors before it."""
        if len(self.finish) < n:
            self._schedule(n - 1)

        def free(edge, count):
            return self.stalls.nth_free_edge(edge, count, n)

        if len(self.start) == n:
            previous = self.last[n - 1] if n else 0
            self.start.append(free(max(self.i.taken(n), previous), 1))
            self.stalls.forget_before(self.start[n])
        if len(self.last) == n:
            self.last.append(free(self.start[n], self.ii - 1))
        if len(self.complete) == n:
            self.complete.append(free(self.last[n], self.depth - 2))
        if len(self.finish) == n:
            # The output register frees at its transfer; with more than one issue step the
            # engine sees that only an edge later (its stall comes from registers alone).
            freed = self.o.taken(n - 1) + (1 if self.ii > 1 and n > 0 else 0)
            self.finish.append(max(self.complete[n] + 1, freed))

    def accept(self, n, offer):
        if n == 0:
            return offer
        if len(self.start) < n:
            self._schedule(n - 1)
        # With more than one issue step the load buffer's ready comes from a register: it takes
        # the next vector at the edge after the one its vector starts at.
        return max(offer, self.start[n - 1] + (1 if self.ii > 1 else 0))

    def emit(self, n):
        self._schedule(n)
        return self.finish[n] + 1


class FoldedCredit(Block):
    """:class:`~hw.folded.FoldedMatrixVector` with more than one issue step: it never stalls
    after the issue, and a vector issues only while the output queue (``capacity`` results) has
    room for every result not yet taken. So, with ``d`` the output's transfers:

    - ``start[n] = max(transfer, last[n-1], d[n - capacity]) + 1``: the load buffer holds the
      vector from its transfer, the previous vector's issues end at ``last[n-1]``, and the
      credit of the result ``capacity`` before it returns at that result's transfer;
    - ``last[n] = start[n] + ii - 1`` and the result is written at ``finish[n] = last[n] +
      depth - 1``, into the queue;
    - ``accept(n) = max(offer, start[n-1] + 1)`` (the load buffer frees when its vector starts;
      its ``ready`` is a register);
    - ``emit(n) = max(finish[n], d[n-1]) + 1``: the queue offers a result from the edge after
      its write, once the one before it has left.
    """

    def __init__(self, ii, depth, capacity):
        self.ii, self.depth, self.capacity = ii, depth, capacity
        self.start = []

    def _start(self, n):
        while len(self.start) <= n:
            k = len(self.start)
            last = self.start[k - 1] + self.ii - 1 if k else 0
            self.start.append(max(self.i.taken(k), last, self.o.taken(k - self.capacity)) + 1)
        return self.start[n]

    def accept(self, n, offer):
        if n == 0:
            return offer
        return max(offer, self._start(n - 1) + 1)

    def emit(self, n):
        finish = self._start(n) + self.ii - 1 + self.depth - 1
        return max(finish, self.o.taken(n - 1)) + 1


class Skid(Block):
    """:class:`~hw.streamutil.SkidBuffer`: an output register and one skid register.

    An input goes straight to the output register if that is free at its transfer, else into
    the skid until the output's transfer ``d[n-1]``; ``i.ready`` is "the skid is empty", a
    register. So ``accept(n) = max(offer, d[n-2] + 1)`` and ``emit(n) = max(transfer, d[n-1])
    + latency``.
    """

    def __init__(self, latency):
        self.latency = latency

    def accept(self, n, offer):
        return max(offer, self.o.taken(n - 2) + 1)

    def emit(self, n):
        return max(self.i.taken(n), self.o.taken(n - 1)) + self.latency


class Serializer(Block):
    """:class:`~hw.streamutil.VectorToPixels`: a vector in, ``pixels`` pixels out.

    Pixel 0 is offered the edge after its vector's transfer, each next pixel the edge after
    its predecessor's transfer; the next vector is taken at the transfer of the last pixel
    (``i.ready = ~busy | last pixel sent``).
    """

    def __init__(self, pixels, latency):
        self.pixels = pixels
        self.latency = latency
        self.ratio = (pixels, 1)

    def accept(self, n, offer):
        return max(offer, self.o.taken(n * self.pixels - 1))

    def emit(self, k):
        n, j = divmod(k, self.pixels)
        if j == 0:
            return self.i.taken(n) + self.latency
        return self.o.taken(k - 1) + 1


class Deserializer(Block):
    """:class:`~hw.streamutil.PixelsToVector`: ``pixels`` pixels in, a vector out.

    Pixels are taken as offered, except a frame's last one, which also waits for the output
    register (the previous vector's transfer); the vector is offered the edge after.
    """

    def __init__(self, pixels, latency):
        self.pixels = pixels
        self.latency = latency
        self.ratio = (1, pixels)

    def accept(self, k, offer):
        n, j = divmod(k, self.pixels)
        if j < self.pixels - 1:
            return offer
        return max(offer, self.o.taken(n - 1))

    def emit(self, n):
        return self.i.taken(n * self.pixels + self.pixels - 1) + self.latency


class DisjointPool(Block):
    """:class:`~hw.pool.MaxPool` with ``stride == kernel``: one output per ``kh x kw`` group.

    Pixels are taken as offered, except one that completes a window, which also waits for the
    output register (the previous output's transfer); the output is offered the edge after.
    """

    def __init__(self, height, width, kernel, latency):
        (kh, kw), (oh, ow) = kernel, (height // kernel[0], width // kernel[1])
        self.latency = latency
        self.pixels = height * width
        self.ends = {
            (kh - 1 + kh * oy) * width + kw - 1 + kw * ox: oy * ow + ox
            for oy in range(oh)
            for ox in range(ow)
        }
        self.outputs = oh * ow
        self.ratio = (self.outputs, self.pixels)
        self.source = sorted(self.ends)  # the pixel that completes each output

    def accept(self, k, offer):
        frame, j = divmod(k, self.pixels)
        if j not in self.ends:
            return offer
        return max(offer, self.o.taken(frame * self.outputs + self.ends[j] - 1))

    def emit(self, m):
        frame, index = divmod(m, self.outputs)
        return self.i.taken(frame * self.pixels + self.source[index]) + self.latency


class Window(Block):
    """:class:`~hw.window.SlidingWindow`: a scan of ``scan_shape`` positions per frame.

    The scan takes one position per step ``step[p]``, at least one edge after the previous one
    and not before the last window offered has been taken (the window register is the output).
    A real position is the transfer of its pixel; a padding position needs no input, but the
    first position of a frame waits until the frame's first pixel is offered. A window leaves
    the edge after the step at its bottom-right position. So, with ``d`` the transfer of the
    last window before ``p``:

    - ``accept`` (real ``p``): ``step[p] = max(offer, step[p-1] + 1, d)``;
    - padding ``p``: ``step[p] = max(step[p-1] + 1, d)`` (and the first pixel's offer, at the
      first position of a frame);
    - ``emit(k) = step[p_k] + latency`` (1: the window register).
    """

    def __init__(self, height, width, scan_shape, output_shape, kernel, stride, padding, latency):
        rows, cols = scan_shape
        self.latency = latency
        (oh, ow), (kh, kw), (sy, sx), (py, px) = output_shape, kernel, stride, padding
        self.pixels = height * width
        self.windows = oh * ow
        self.ratio = (self.windows, self.pixels)
        ends_rows = {kh - 1 + sy * oy for oy in range(oh)}
        ends_cols = {kw - 1 + sx * ox for ox in range(ow)}
        # per position of a frame: (pixel index or None, windows offered before it)
        self.positions = []
        self.window_at = []  # position of each window
        pixel = 0
        for r in range(rows):
            for c in range(cols):
                real = py <= r < py + height and px <= c < px + width
                self.positions.append((pixel if real else None, len(self.window_at)))
                pixel += real
                if r in ends_rows and c in ends_cols:
                    self.window_at.append(len(self.positions) - 1)
        self.pixel_at = [p for p, (j, _) in enumerate(self.positions) if j is not None]
        self.steps = []  # step edge of every position scanned so far, all frames

    def _earliest(self, p):
        """The first edge at which the scan may step at global position ``p`` (no input)."""
        frame, local = divmod(p, len(self.positions))
        before = frame * self.windows + self.positions[local][1] - 1
        edge = max(self.steps[p - 1] + 1 if p else 1, self.o.taken(before))
        if local == 0:  # a new frame starts when its first pixel is offered
            edge = max(edge, self.i.offered(frame * self.pixels))
        return edge

    def _scan_to(self, p):
        """Step every padding position before global position ``p``."""
        while len(self.steps) < p:
            q = len(self.steps)
            if self.positions[q % len(self.positions)][0] is not None:
                raise Pending  # a real position: its pixel comes through accept
            self.steps.append(self._earliest(q))

    def accept(self, k, offer):
        frame, j = divmod(k, self.pixels)
        p = frame * len(self.positions) + self.pixel_at[j]
        self._scan_to(p)
        edge = max(offer, self._earliest(p))
        self.steps.append(edge)
        return edge

    def emit(self, k):
        frame, index = divmod(k, self.windows)
        p = frame * len(self.positions) + self.window_at[index]
        self._scan_to(p + 1)
        return self.steps[p] + self.latency
