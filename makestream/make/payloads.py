"""Decoding Make's response bodies within bounds: size, nesting, and what JSON can hold.

The client reads at most RESPONSE_MAX_BYTES of a body, and `decode` refuses JSON nested deeper
than JSON_MAX_DEPTH before any model or walk sees it, so that no answer from Make can exhaust
memory or the interpreter's stack. Every refusal is a PayloadError naming the endpoint.
"""

from __future__ import annotations

import json
from typing import Any

from makestream.errors import PayloadError
from makestream.limits import JSON_MAX_DEPTH


def depth_over(value: Any, limit: int) -> bool:
    """True when `value` (decoded JSON) nests more than `limit` arrays and objects deep.

    Iterative, so that it cannot itself run out of stack.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def decode(content: bytes, *, endpoint: str) -> Any:
    """A 2xx body as JSON; PayloadError when it is not JSON or nests too deeply."""
    try:
        body = json.loads(content)
    except RecursionError:
        raise PayloadError(
            f"Make answered {endpoint} with JSON nested deeper than {JSON_MAX_DEPTH} levels"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise PayloadError(f"Make answered {endpoint} with a body that is not JSON") from None
    except ValueError:  # an integer of thousands of digits (Python's int_max_str_digits)
        raise PayloadError(
            f"Make answered {endpoint} with a number too long to read in its JSON"
        ) from None
    if depth_over(body, JSON_MAX_DEPTH):
        raise PayloadError(
            f"Make answered {endpoint} with JSON nested deeper than {JSON_MAX_DEPTH} levels"
        )
    return body
