"""Run a criterion under a deadline: the compression goes on without it when it is too slow.

The criterion runs in a daemon worker thread; the caller waits until the deadline and then moves on
(the compressor falls back to the lexical criterion, or raises). Python cannot interrupt a running
call, so a model call that overran keeps its thread until it returns; at most
:data:`MAX_ABANDONED_SCORERS` such threads are allowed at once (process-wide): past that, further
calls skip the slow criterion at once instead of piling up threads that burn CPU. Daemon threads
never block interpreter exit.

Example:
    >>> call_with_deadline(lambda: 41 + 1, 5.0)
    42
"""

from __future__ import annotations

import contextvars
import math
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import InvalidInputError

T = TypeVar("T")

MAX_ABANDONED_SCORERS = 4
_lock = threading.Lock()
_abandoned = 0


class ScoringTimedOut(Exception):
    """Internal: the criterion did not finish before the deadline (the caller decides what follows)."""


def check_timeout(value: Any, what: str = "timeout_s") -> float | None:
    """``value`` as a positive, finite number of seconds, or ``None`` (no limit).

    Raises:
        InvalidInputError: zero, negative, not finite, or not a number.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InvalidInputError(f"{what} must be a positive number of seconds or None, got {value!r}")
    return float(value)


def abandoned_scorers() -> int:
    """How many timed-out criterion calls are still running in their worker threads."""
    return _abandoned


def call_with_deadline(fn: Callable[[], T], seconds: float) -> T:
    """Return ``fn()`` if it finishes within ``seconds``; re-raise what it raised.

    Raises:
        ScoringTimedOut: the deadline passed first (``fn`` keeps running in its thread), no time was
            left, or too many earlier timed-out calls are still running.
    """
    global _abandoned
    if seconds <= 0:
        raise ScoringTimedOut("no time left before the deadline")
    if _abandoned >= MAX_ABANDONED_SCORERS:
        raise ScoringTimedOut(f"{_abandoned} earlier timed-out scorer calls are still running")
    box: dict[str, Any] = {}
    done = threading.Event()
    context = contextvars.copy_context()  # the criterion sees the caller's context variables

    def work() -> None:
        global _abandoned
        try:
            box["value"] = context.run(fn)
        except Exception as exc:  # handed to the caller, which applies its error policy
            box["error"] = exc
        finally:
            with _lock:
                done.set()
                if box.get("abandoned"):
                    _abandoned -= 1

    threading.Thread(target=work, name="agent-tokred-scorer", daemon=True).start()
    if not done.wait(seconds):
        with _lock:
            if not done.is_set():
                box["abandoned"] = True
                _abandoned += 1
                raise ScoringTimedOut(f"no result within {seconds:.3g} s")
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value
