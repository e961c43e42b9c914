"""Answer candidates: the trial answers a reasoning trace states on its way.

A candidate is a value a step concludes: ``\\boxed{540}``, ``the answer is 540``, ``**540**``,
``Therefore, ... 540 meters``, ``= 540``. Values are normalised so that ``$1,080.00``, ``1080`` and
``1080.0`` are one candidate. Each match has a *strength*: 3 for boxed / "the answer is", 2 for bold
and conclusion sentences ("So", "Therefore", "Thus", "所以"), 1 for a result after ``=`` / "is" /
"equals". Non-numeric answers (``\\boxed{B}``, ``the answer is Paris``) are candidates too.

Example:
    >>> from agent_tokred.overthinking.answers import extract_candidates
    >>> [(c.value, c.strength) for c in extract_candidates("So 9 * 60 = 540 meters. The answer is 540.")]
    [('540', 2), ('540', 3)]
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

# Digits may be grouped in threes with "," and LaTeX's "{,}" or ",\\!" (``3,\\!000``); "2,3" is two numbers.
_NUM = r"-?(?:\\?\$)?\d+(?:(?:,|\{,\}|,\\!)\d{3})*(?:\.\d+)?%?"
_NUMBER = re.compile(rf"(?<![\w.^_]){_NUM}(?![\w]|\.\d)")
_BOXED = re.compile(r"\\boxed\s*\{((?:[^{}]|\{[^{}]*\})*)\}")
_ANSWER_IS = re.compile(
    r"(?:final\s+)?answer(?:\s*\*\*)?\s*(?:is|should be|would be|will be|must be|=|:|：)(?:\s*\*\*)?\s*"
    r"([^\n;]{1,80})|答案(?:是|为|：|:)\s*([^\n。，,；;]{1,40})",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
_BOLD = re.compile(r"\*\*\s*([^*\n]{1,40}?)\s*\*\*")
_CONCLUSION = re.compile(
    r"(?:^|(?<=[.!?\n。！？])\s*)"
    r"(?:so|therefore|thus|hence|then|that means|which means|in total|total(?:ly)?|"
    r"all together|altogether|overall|所以|因此|总共|一共)\b(?:[^.!?\n。！？]|\.(?=\d))*",
    re.IGNORECASE,
)
_RESULT = re.compile(
    rf"(?:=|≈|\\approx|\bequals?\b|\bis\b|\bare\b|\bgives\b|\bmakes\b|\bcomes to\b|\btotals?\b|"
    rf"\bget\b|等于|是)"
    rf"\s*(?:\\\(|\$)?\s*({_NUM})(?![\w])"
)
_FRAC = re.compile(r"(-\s*)?(?:(\d+)\s*)?\\[dt]?frac\s*\{\s*(\d+)\s*\}\s*\{\s*(\d+)\s*\}")
_SLASH = re.compile(r"(-?\d+)\s*/\s*(\d+)(?![\d.])")
_TUPLE = re.compile(r"\(\s*-?[\d.]+(?:\s*,\s*-?[\d.]+)+\s*\)")
_OPERAND_BEFORE = re.compile(
    r"(?:\bplus|\bminus|\btimes|\bof|\bby|\bdivided by|\bover|\bfrom|\bper|\band|[-+*/×÷^(])"
    r"\s*(?:\\?\$)?\s*$",
    re.IGNORECASE,
)
_OPERATOR_AFTER = re.compile(r"\s*(?:[-+*/×÷^]|\\times|\\div|plus\b|minus\b|times\b|divided\b)", re.IGNORECASE)
_WORD_ANSWER = re.compile(r"^[\w' -]{1,40}$", re.UNICODE)
_LATEX_NOISE = re.compile(r"\\(?:text|mathrm|mathbf|textbf)\{([^{}]*)\}|\\[,;! ]|\\\$|[{}]")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One trial answer stated in a text.

    Attributes:
        value: normalised value (``"1080"``, ``"0.5"``, ``"paris"``).
        raw: the matched text as written.
        start: offset of the match in the text given to :func:`extract_candidates` (plus its offset).
        strength: 3 boxed / "the answer is", 2 bold or conclusion sentence, 1 result after "=" / "is".
    """

    value: str
    raw: str
    start: int
    strength: int


def normalize_answer(text: str) -> str | None:
    """Normalise an answer: numbers lose ``$``, commas, ``%`` and trailing zeros; fractions (``\\frac``,
    ``\\dfrac``, mixed ``3\\frac{5}{7}``, ``400/11``) are reduced (``26/7``; a whole one becomes its
    integer); a tuple stays a tuple (``(2,3)``); an equation gives its right-hand side (``x = 6``);
    words are lowercased.

    Returns ``None`` when nothing answer-like is left.

    Example:
        >>> normalize_answer("$1,080.00"), normalize_answer("\\\\text{Paris}"), normalize_answer("3\\\\frac{5}{7}")
        ('1080', 'paris', '26/7')
    """
    if "=" in text:  # "12 \\times 3 = 36", "x = 6": the result
        text = text.rsplit("=", 1)[1]
    frac = _FRAC.search(text)
    if frac is not None and len(text) - len(frac.group()) <= 12:
        whole = int(frac.group(2) or 0)
        top, den = int(frac.group(3)), int(frac.group(4))
        return _fraction(-(whole * den + top) if frac.group(1) else whole * den + top, den)
    cleaned = _LATEX_NOISE.sub(lambda m: m.group(1) or "", text).strip().strip("*").strip()
    cleaned = cleaned.rstrip(".").strip()
    tup = _TUPLE.fullmatch(cleaned)
    if tup is not None:
        return "(" + ",".join(p.strip() for p in cleaned[1:-1].split(",")) + ")"
    slash = _SLASH.search(cleaned)
    if slash is not None and len(cleaned) - len(slash.group()) <= 24:
        return _fraction(int(slash.group(1)), int(slash.group(2)))
    num = _NUMBER.search(cleaned)
    if num is not None and len(cleaned) - len(num.group()) <= 24:
        return _normalize_number(num.group())
    if cleaned and _WORD_ANSWER.match(cleaned) and any(ch.isalpha() for ch in cleaned):
        return " ".join(cleaned.lower().split())
    return None


def _fraction(num: int, den: int) -> str | None:
    if den == 0:
        return None
    g = math.gcd(num, den)
    num, den = num // g, den // g
    return str(num) if den == 1 else f"{num}/{den}"


def _answer_number(span: str) -> re.Match[str] | None:
    # "the answer is 9 * 60 = 540": the result after the last "="; "$4 more than 2 bagels": the amount.
    nums = list(_NUMBER.finditer(span))
    if not nums:
        return None
    after_eq = [n for n in nums if "=" in span[: n.start()]]
    if after_eq:
        return after_eq[-1]
    money = [n for n in nums if "$" in n.group()]
    return money[0] if money else nums[0]


def _normalize_number(raw: str) -> str | None:
    s = re.sub(r"[$,\\!{}]", "", raw).rstrip("%")
    try:
        value = float(s)
    except ValueError:
        return None
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def extract_candidates(text: str, offset: int = 0) -> list[Candidate]:
    """Trial answers stated in ``text``, in order of appearance (one per position, strongest wins).

    Args:
        text: a step or any piece of reasoning.
        offset: added to each candidate's ``start``.
    """
    found: dict[int, Candidate] = {}
    # A boxed answer is one candidate: the numbers inside ``\\boxed{\\dfrac{400}{11}}`` are not others.
    inside = [(m.start(1), m.end(1)) for m in _BOXED.finditer(text)]

    def add(value: str | None, raw: str, start: int, strength: int) -> None:
        if value is None or any(a < start < b for a, b in inside):
            return
        old = found.get(start)
        if old is None or old.strength < strength:
            found[start] = Candidate(value, raw, offset + start, strength)

    for m in _BOXED.finditer(text):
        add(normalize_answer(m.group(1)), m.group(0), m.start(1), 3)
    for m in _ANSWER_IS.finditer(text):
        group = 1 if m.group(1) is not None else 2
        span = m.group(group)
        end = _SENTENCE_END.search(span)
        span = span[: end.start()] if end is not None else span
        num = _answer_number(span)
        if num is not None:
            add(_normalize_number(num.group()), num.group(), m.start(group) + num.start(), 3)
        elif not _BOXED.search(span):
            add(normalize_answer(span), span, m.start(group), 3)
    for m in _BOLD.finditer(text):
        if _NUMBER.fullmatch(m.group(1).strip()) or _NUMBER.search(m.group(1)):
            num = _NUMBER.search(m.group(1))
            if num is not None:
                add(_normalize_number(num.group()), num.group(), m.start(1) + num.start(), 2)
    for m in _CONCLUSION.finditer(text):
        nums = list(_NUMBER.finditer(m.group()))
        # The sentence's last number is its conclusion unless it is an operand ("100 plus 50").
        if nums and not _OPERAND_BEFORE.search(m.group()[: nums[-1].start()]):
            last = nums[-1]
            if not _NUMBER.search(m.group()[last.end() :]) and not _OPERATOR_AFTER.match(m.group()[last.end() :]):
                add(_normalize_number(last.group()), last.group(), m.start() + last.start(), 2)
    for m in _RESULT.finditer(text):
        add(_normalize_number(m.group(1)), m.group(1), m.start(1), 1)
    return [found[k] for k in sorted(found)]


def final_answer(text: str) -> str | None:
    """The answer a conclusion states: boxed, then "the answer is", then bold, then the last result.

    Example:
        >>> final_answer("Both methods agree. Therefore the total is \\\\boxed{540}.")
        '540'
    """
    cands = extract_candidates(text)
    for level in (3, 2, 1):
        strongest = [c for c in cands if c.strength >= level]
        if strongest:
            return strongest[-1].value
    nums = list(_NUMBER.finditer(text))
    return _normalize_number(nums[-1].group()) if nums else None


def mentions(text: str, value: str) -> list[int]:
    """Offsets where ``value`` (a normalised candidate) is written in ``text``, in any number format."""
    if not value:
        return []
    if _NUMBER.fullmatch(value):
        return [m.start() for m in _NUMBER.finditer(text) if _normalize_number(m.group()) == value]
    lowered = text.lower()
    return [m.start() for m in re.finditer(rf"(?<!\w){re.escape(value)}(?!\w)", lowered)]


def values(cands: Iterable[Candidate], min_strength: int = 1) -> list[str]:
    """The values of candidates at or above ``min_strength``, in order."""
    return [c.value for c in cands if c.strength >= min_strength]
