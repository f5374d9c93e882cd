"""Weights read from ROM times stream values: what a folded engine's processing elements compute.

A folded engine (:mod:`hw.folded`) cannot wire its weights in as constant-weight layers do
(:mod:`hw.dotproduct`): each weight arrives as ROM bits, so each product is a small function of
the weight's bits and the input's bits, expressed as signed bits for a compressor tree
(:func:`product_bits`): an XNOR or a (nonzero, negative) select for ternary and binary weights,
an AND array for ``intN`` weights. The weight types, their ROM widths and their checks live here
too.
"""

import numpy as np
from amaranth.hdl import Signal, Value

from hw.compressor import signed_bit_heap
from hw.dotproduct import value_bits
from hw.encoding import ValueEncoding
from hw.pipeline import shape_for_range

__all__ = [
    "check_multiply",
    "simd_ranges",
    "WEIGHT_TYPES",
    "MULTIPLY",
    "weight_bits",
    "check_weights",
    "weight_range_of_rows",
    "product_bits",
    "product_range",
    "product_width",
    "can_multiply",
    "multiplier_bits",
    "tile_heaps",
    "heap_column_bits",
]

#: How a folded engine multiplies an ``intN`` weight: ``logic`` (an AND array into the PE's
#: compressor tree, :func:`product_bits`) or ``dsp`` (one ``*`` per product, which Yosys maps to
#: the part's multiplier blocks, :func:`multiplier_bits`).
MULTIPLY = ("logic", "dsp")

#: Weight types a folded engine stores: ternary (2 ROM bits), binary (1), and ``intN``
#: two's complement integers of N = 2..8 bits (TTQ, QNN/DoReFa weights).
WEIGHT_TYPES = ("ternary", "binary") + tuple(f"int{n}" for n in range(2, 9))


def weight_bits(weight_type):
    """ROM bits per weight of ``weight_type`` (one of :data:`WEIGHT_TYPES`)."""
    if weight_type not in WEIGHT_TYPES:
        raise ValueError(
            f"Weight type must be 'ternary', 'binary' or 'int2' to 'int8', not {weight_type!r}"
        )
    return {"ternary": 2, "binary": 1}.get(weight_type) or int(weight_type[3:])


def check_weights(weights, weight_type):
    """Return ``weights`` as a 2-D int64 array, or raise if a value is not of ``weight_type``."""
    array = np.asarray(weights)
    if array.dtype.kind not in "iu" or array.ndim != 2 or 0 in array.shape:
        raise TypeError(f"Weights must be a non-empty 2-D array of integers, not {weights!r}")
    array = array.astype(np.int64)
    if weight_type.startswith("int"):
        bits = weight_bits(weight_type)
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        bad = (array < lo) | (array > hi)
        if np.any(bad):
            raise ValueError(
                f"{weight_type} weights must be {lo} to {hi}, not {int(array[bad][0])}"
            )
        return array
    allowed = (-1, 0, 1) if weight_type == "ternary" else (-1, 1)
    bad = ~np.isin(array, allowed)
    if np.any(bad):
        names = "-1, 0 or +1" if weight_type == "ternary" else "-1 or +1"
        raise ValueError(
            f"{weight_type.capitalize()} weights must be {names}, not {int(array[bad][0])}"
        )
    return array


def weight_range_of_rows(weights, encoding):
    """Per-row ``(lo, hi)`` of ``weights @ x`` over every ``x`` in ``encoding``: two arrays.

    Every term's range contains 0 (all encodings here span 0), so every partial sum of a row
    lies within the row's range too: an accumulator sized for the range never overflows while
    it accumulates.
    """
    weights = np.asarray(weights, dtype=np.int64)
    lo_terms = np.minimum(weights * encoding.min, weights * encoding.max)
    hi_terms = np.maximum(weights * encoding.min, weights * encoding.max)
    return lo_terms.sum(axis=1), hi_terms.sum(axis=1)


def _signed_digits(value):
    """``value`` as ``sum(sign * 2**exponent)``: ``(exponent, sign)`` pairs (non-adjacent form)."""
    digits = []
    exponent = 0
    while value:
        if value & 1:
            sign = 2 - (value & 3)
            digits.append((exponent, sign))
            value -= sign
        value >>= 1
        exponent += 1
    return digits


def product_bits(x, input_encoding, w, weight_type):
    """``x * w`` of a runtime weight ``w`` (ROM bits) and an input ``x``, as signed bits.

    Returns ``(bits, constant)`` in the form of :func:`hw.dotproduct.value_bits`, such that
    ``x * w = sum(sign * 2**exponent * bit) + constant``, ready for
    :func:`hw.compressor.signed_bit_heap`. A bit is an input or ROM bit, or a function of at
    most four of them (one LUT4). Only input and ROM bits come with sign -1: a LUT bit that
    would is inverted instead (the LUT inverts for free), and the constant makes up for it.

    ``w`` has the ROM encoding: ternary ``(nonzero, negative) = (w[0], w[1])``; binary one bit,
    1 for +1. Ternary and binary products are ``nonzero - 2 * negative`` (binary by binary:
    ``2 * XNOR - 1``); an ``n``-bit input is taken bit plane by bit plane
    (:func:`hw.dotproduct.value_bits`), each bit ``b`` times ``w`` being ``t - negative`` with
    ``t = (b & nonzero) ^ negative``.
    """
    kind = input_encoding.kind
    if weight_type.startswith("int"):
        return _int_product_bits(x, input_encoding, w, weight_bits(weight_type))
    if weight_type == "ternary":
        w_nonzero, w_negative = w[0], w[1]
    else:
        w_nonzero, w_negative = None, ~w[0]  # None: always nonzero
    if kind == "binary" and weight_type == "binary":
        return value_bits(~(x[0] ^ w[0]), ValueEncoding.binary())
    if kind in ("ternary", "binary"):
        x_nonzero, x_negative = (x[0], x[1]) if kind == "ternary" else (None, ~x[0])
        present = [bit for bit in (x_nonzero, w_nonzero) if bit is not None]
        nonzero = present[0] if len(present) == 1 else present[0] & present[1]
        negative = nonzero & (x_negative ^ w_negative)
        # nonzero - 2 * negative = nonzero + 2 * ~negative - 2
        return [(nonzero, 0, 1), (~negative, 1, 1)], -2
    bits, constant = value_bits(x, input_encoding)
    out = []
    for bit, exponent, sign in bits:
        t = bit ^ w_negative if w_nonzero is None else (bit & w_nonzero) ^ w_negative
        if sign > 0:
            out.append((t, exponent, 1))
        else:
            out.append((~t, exponent, 1))
            constant -= 1 << exponent
    # sum(sign * 2**exponent * (t - negative)) = (the t terms) - weight * negative
    weight = sum(sign << exponent for _, exponent, sign in bits)
    if weight_type == "ternary":
        raw, coefficient = w[1], -weight
    else:
        # negative = 1 - w[0]
        raw, coefficient = w[0], weight
        constant -= weight
    out.extend((raw, exponent, sign) for exponent, sign in _signed_digits(coefficient))
    return out, constant


def product_range(input_encoding, weight_type):
    """``(lo, hi)`` of one product of an input of ``input_encoding`` and an ``intN`` weight."""
    bits = weight_bits(weight_type)
    corners = [
        x * w
        for x in (input_encoding.min, input_encoding.max)
        for w in (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    ]
    return min(corners), max(corners)


def product_width(input_encoding, weight_type):
    """Bits of the narrowest signal holding every product of :func:`product_range`: the
    width of a multiplier's result."""
    return shape_for_range(*product_range(input_encoding, weight_type)).width


def can_multiply(input_encoding, weight_type):
    """Whether ``multiply="dsp"`` applies: ``intN`` weights and inputs of two or more bits (a
    binary input's product is a select of ``w`` or ``-w``, no work for a multiplier)."""
    return weight_type.startswith("int") and input_encoding.kind != "binary"


def multiplier_bits(m, x, input_encoding, w, weight_type, *, name):
    """``x * w`` as one multiplier, the product's signal in ``m``: ``(bits, constant)`` in the
    form of :func:`product_bits`, the product's bits with their two's complement weights.

    The product is a ``*`` of the input's value and the ROM word read as a signed integer,
    into a signal of the product's exact range (:func:`product_range`): Yosys maps it to a
    multiplier block where the part has one and its widths qualify (``synth_ecp5``:
    ``MULT18X18D`` for operands of 2 to 18 bits; ``synth_ice40 -dsp``: ``SB_MAC16`` for a
    product of 11 to 32 bits), else to logic.
    """
    if not can_multiply(input_encoding, weight_type):
        raise ValueError(
            f"A multiplier takes intN weights and non-binary inputs, not {weight_type} weights "
            f"and {input_encoding.name} inputs"
        )
    lo, hi = product_range(input_encoding, weight_type)
    value = Value.cast(x)
    value = value.as_unsigned() if input_encoding.kind == "uint" else value.as_signed()
    product = Signal(shape_for_range(lo, hi), name=name)
    m.d.comb += product.eq(value * Value.cast(w).as_signed())
    width = product.shape().width
    if lo >= 0:
        return value_bits(product, ValueEncoding.uint(width))
    return value_bits(product, ValueEncoding.int(width))


def heap_column_bits(input_encoding, weight_type, multiply="logic"):
    """The most bits one product puts in one column of its PE's heap (:func:`product_bits`):
    one for a ternary or binary weight by a ternary or binary input, two by an ``n``-bit input
    (a bit plane and a sign term); ``max(2, min(n, N))`` for an ``intN`` weight's AND array by
    an ``n``-bit input; one for a multiplier's result (``multiply="dsp"``)."""
    if multiply == "dsp":
        return 1
    narrow = input_encoding.kind in ("ternary", "binary")
    if not weight_type.startswith("int"):
        return 1 if narrow else 2
    return max(2, min(input_encoding.width, weight_bits(weight_type)))


def tile_heaps(m, x_slice, tile, input_encoding, weight_type, multiply, pe, simd):
    """A folded engine's products of one step: for each of the ``pe`` rows of the weight
    ``tile``, the signed bit heap (:func:`hw.compressor.signed_bit_heap`) of its ``simd``
    products with ``x_slice``, as AND arrays (:func:`product_bits`) or, with ``multiply``
    ``"dsp"``, as multiplier results (:func:`multiplier_bits`)."""
    heaps = []
    for p in range(pe):
        bits, constant = [], 0
        for s in range(simd):
            if multiply == "dsp":
                product, offset = multiplier_bits(
                    m, x_slice[s], input_encoding, tile[p][s], weight_type, name=f"product_{p}_{s}"
                )
            else:
                product, offset = product_bits(x_slice[s], input_encoding, tile[p][s], weight_type)
            bits += product
            constant += offset
        heaps.append(signed_bit_heap(bits, constant))
    return heaps


def _int_product_bits(x, input_encoding, w, bits):
    """``x * w`` for an ``intN`` ROM weight ``w`` (``bits`` bits, two's complement): an array
    of AND terms, bit plane of ``x`` by bit of ``w``, each with the weight of both.

    ``w = sum(2**b * w[b]) - 2**bits * w[bits - 1]`` (the sign bit counts ``-2**(bits-1)``) and
    ``x = sum(sign * 2**e * x_e) + c`` (:func:`hw.dotproduct.value_bits`), so ``x * w`` is the
    sum of ``sign * sign_b * 2**(e + b) * (x_e & w[b])`` and of ``c * sign_b * 2**b * w[b]``. A
    term of sign -1 that is an AND is inverted instead (``-t = ~t - 1``; the LUT inverts for
    free); a bare ROM bit keeps its sign.
    """
    x_bits, c = value_bits(x, input_encoding)
    out, constant = [], 0
    for b in range(bits):
        sign_b = -1 if b == bits - 1 else 1
        for bit, e, sign in x_bits:
            if sign * sign_b > 0:
                out.append((bit & w[b], e + b, 1))
            else:
                out.append((~(bit & w[b]), e + b, 1))
                constant -= 1 << (e + b)
        if c:
            # c * sign_b * 2**b * w[b], c = -1 for binary inputs (the only constant)
            out.append((w[b], b, -sign_b if c < 0 else sign_b))
    return out, constant


def check_multiply(multiply, input_encoding, weight_type):
    """``multiply`` itself, if it is one of :data:`MULTIPLY` and (``"dsp"``) the weights and
    inputs can be multiplied (:func:`can_multiply`)."""
    if multiply not in MULTIPLY:
        raise ValueError(
            f"Multiply must be one of {', '.join(map(repr, MULTIPLY))}, not {multiply!r}"
        )
    if multiply == "dsp" and not can_multiply(input_encoding, weight_type):
        raise ValueError(
            f"Multiply 'dsp' takes intN weights and non-binary inputs, not {weight_type} "
            f"weights and {input_encoding.name} inputs"
        )
    return multiply


def simd_ranges(weights, encoding, pe, simd):
    """Per PE of a folded engine, ``(lo, hi)`` of its SIMD sum: over its tiles (rows ``p, p +
    pe, ...`` and every column fold) and all inputs of ``encoding``."""
    weights = np.asarray(weights)
    rows, cols = weights.shape
    lo_terms = np.minimum(weights * encoding.min, weights * encoding.max)
    hi_terms = np.maximum(weights * encoding.min, weights * encoding.max)
    tiles = (rows // pe, pe, cols // simd, simd)
    lo_tiles = lo_terms.reshape(tiles).sum(axis=3).min(axis=(0, 2))
    hi_tiles = hi_terms.reshape(tiles).sum(axis=3).max(axis=(0, 2))
    return [(int(lo), int(hi)) for lo, hi in zip(lo_tiles, hi_tiles, strict=True)]
