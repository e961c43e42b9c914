"""Input checks shared by every entry point: text must be real, decodable text."""

from __future__ import annotations

from typing import Any

from .errors import InvalidInputError

_CONTROL_OK = {"\n", "\r", "\t", "\f", "\v"}
_CONTROL = tuple(chr(c) for c in [*range(32), 127] if chr(c) not in _CONTROL_OK)


def ensure_text(value: Any, *, what: str = "text") -> str:
    """Return ``value`` as ``str`` or raise :class:`InvalidInputError` saying why it is not text.

    ``bytes`` must be UTF-8. Strings with lone surrogates (undecodable bytes smuggled in) and
    strings that are mostly control characters (binary junk) are refused rather than guessed at.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(
                f"{what} is not valid UTF-8 (bad byte at offset {exc.start}); decode it first"
            ) from None
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be str or UTF-8 bytes, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"{what} holds a lone surrogate at offset {exc.start} (undecodable bytes)") from None
    if value:
        sample = value[:65536]
        control = sum(map(sample.count, _CONTROL))  # one C-speed search per control character
        if control > 0.1 * len(sample):
            raise InvalidInputError(f"{what} looks like binary data ({control} control characters in {len(sample)})")
    return value
