"""Strict JSON for what users give: integers of bounded length, no key given twice.

Python's ``json`` takes the last of two equal keys (a typo that passes silently) and raises a
plain ``ValueError`` on an integer of more than 4,300 digits; :func:`loads` refuses both, with
a :class:`JSONError` saying what and, where the parser knows it, the line and column.
"""

import json
import re

__all__ = ["JSONError", "loads", "MAX_INT_DIGITS"]

#: Digits an integer literal may have: more than any limit of a description needs (2**62 has 19).
MAX_INT_DIGITS = 30


#: A run of digits longer than an integer may be; only a text holding one (in a number or in a
#: string) is parsed with the slower check of every integer literal.
_LONG_DIGITS = re.compile(f"[0-9]{{{MAX_INT_DIGITS + 1}}}")


class JSONError(ValueError):
    """Text that is not strict JSON; the message says what is wrong (and where, if known)."""


def _int(text):
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise JSONError(f"an integer of {digits} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _constant(name):
    raise JSONError(f"{name} is not a JSON number")


def _object(pairs):
    doc = {}
    for key, value in pairs:
        if key in doc:
            shown = key if len(key) <= 40 else key[:30] + "..."
            raise JSONError(f"the key {shown!r} is given twice in one object")
        doc[key] = value
    return doc


def loads(text):
    """Parse ``text`` as strict JSON.

    Raises
    ------
    JSONError
        For malformed JSON (with line and column), a duplicate key, an integer literal of more
        than :data:`MAX_INT_DIGITS` digits, ``NaN`` or ``Infinity``, or nesting too deep.
    """
    parse_int = _int if _LONG_DIGITS.search(text) else None
    try:
        return json.loads(
            text, parse_int=parse_int, parse_constant=_constant, object_pairs_hook=_object
        )
    except json.JSONDecodeError as exc:
        raise JSONError(f"{exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise JSONError("nested too deeply") from None
