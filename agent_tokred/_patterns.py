"""Regular expressions for spans that must never be split: URLs, ids, numbers, dates, code names."""

from __future__ import annotations

import re

_URL = r"(?:https?|ftp|file)://[^\s<>\"'`]+[^\s<>\"'`.,;:!?)\]}]"
_EMAIL = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
_UUID = r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
_HEX = r"\b(?:0x)?(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{7,}\b"
_DATE = r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b"
_TIME = r"\b\d{1,2}:\d{2}(?::\d{2})?\b"
_NUMBER = r"(?<![\w.])[-+]?[$€£]?\d+(?:[,_]\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?%?(?![\w])"
_CODE = r"\b[A-Za-z_][\w]*(?:(?:\.|::|->|/)[A-Za-z_][\w]*)+(?:\(\))?|\b[A-Za-z]+_[\w]+\b|\b[a-z]+[A-Z]\w*\b"
_PATH = r"(?<!\w)(?:~|\.{1,2})?(?:/[\w.@-]+){2,}/?"

#: Spans kept atomic by segmentation and boosted by the lexical criterion.
PROTECTED = re.compile("|".join([_URL, _EMAIL, _UUID, _DATE, _HEX, _PATH, _CODE, _TIME, _NUMBER]))

#: Scripts written without spaces between words; each character is its own word unit.
CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f]")

#: A word: a protected span, one CJK character, or a run of anything else that is not whitespace.
WORD = re.compile(
    rf"(?:{PROTECTED.pattern})|{CJK.pattern}|[^\s\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f]+"
)

#: Abbreviations after which a period does not end a sentence.
ABBREVIATIONS = frozenset(
    ["mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "cf", "al", "fig", "no", "vol", "pp", "inc", "ltd", "co", "corp", "u.s", "u.k", "approx", "est", "dept"]
)
