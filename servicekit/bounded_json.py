"""JSON from outside the process, parsed with a bound on its size and its nesting.

`json.loads` recurses once per level of nesting: a body of `[[[[...` a few kilobytes long
raises RecursionError, which no `except ValueError` catches (a 500 and a traceback for one
cheap request). Nesting below that limit still costs: a Struct that deep cannot be read
back by a protobuf parser (its recursion limit is 100 messages, two per JSON level), so a
stored event would break every watcher that receives it. The depth is therefore checked
before parsing, on the bytes, in time linear in their length, and refused as a ValueError
(`JsonRefused`) like any other malformed body.

Zoho's JSON (callbacks, API answers, JWT parts, key sets) nests a handful of levels.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Zoho's deepest bodies (a Desk ticket's payload) nest under ten levels; a Struct of 32
# levels is 64 protobuf messages, well inside the parser's 100.
MAX_DEPTH = 32

# Quotes and brackets only: the rest of the input cannot change how deep it nests.
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'"[]{}')
# Objects and arrays alike: `{` as `[`, `}` as `]`.
_ONE_KIND = bytes.maketrans(b"{}", b"[]")
_RUNS = re.compile(rb"\[+|\]+")


class JsonRefused(ValueError):
    """Input that is not JSON, or is past a bound; the message names which."""


def nests_deeper_than(raw: bytes, limit: int) -> bool:
    """Whether `raw`'s arrays and objects nest more than `limit` levels (brackets inside
    strings do not count), in time linear in its length whatever it holds."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    # Zoho's answers rarely hold a backslash: two passes over the whole body saved.
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"") if b"\\" in raw else raw
    # With escaped quotes gone, every `"` opens or closes a string: split at the quotes,
    # every other piece lies outside strings (from the first on). The same as removing
    # each "..." with a regex, at half its cost on a CRM page of 200 channels.
    outside = unescaped.translate(None, _NOT_STRUCTURE).split(b'"')[::2]
    brackets = b"".join(outside).translate(_ONE_KIND)
    # Each pass (in C) removes the innermost level, one bracket pair per peak. Once a pass
    # removes few, few peaks are left, so few runs of brackets: those are counted in Python.
    removed = 0
    while removed < limit:
        if b"[" * (limit + 1 - removed) in brackets:
            return True
        shorter = brackets.replace(b"[]", b"")
        gone = len(brackets) - len(shorter)
        if not gone:
            break
        brackets, removed = shorter, removed + 1
        if gone < len(brackets) // 16:
            break
    depth = 0
    for run in _RUNS.finditer(brackets):
        if run.group().startswith(b"["):
            depth += len(run.group())
            if depth + removed > limit:
                return True
        else:
            depth = max(0, depth - len(run.group()))
    return False


def loads(raw: bytes | str, *, max_depth: int = MAX_DEPTH, max_bytes: int | None = None) -> Any:
    """`json.loads(raw)`, or JsonRefused if `raw` is longer than `max_bytes`, nests deeper
    than `max_depth`, or is not JSON."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if max_bytes is not None and len(data) > max_bytes:
        raise JsonRefused(f"JSON larger than {max_bytes} bytes")
    if nests_deeper_than(data, max_depth):
        raise JsonRefused(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(raw)
    except RecursionError:  # not reachable past the depth check; kept as a last guard
        raise JsonRefused(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError:
        raise JsonRefused("not JSON") from None
