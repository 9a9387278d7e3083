"""Red flags: configured phrases that, found in a patient's intake, raise the ticket's urgency.

This module owns the text matching and the shipped default phrase lists. It is pure: no Redis,
no I/O, no clock. It never changes a ticket itself; the caller raises the urgency and records
which phrase fired, so the doctor sees why and the gateway can show emergency guidance.

How a phrase matches a text (both go through `normalise` first):

- Case, accents, character width and apostrophe style never matter: "CAFÉ", "cafe", "ｃａｆｅ"
  and "Café" are the same text, and so are "can't", "can’t" and "canʼt".
- Punctuation and whitespace runs count as one space, so "self-harm" matches "self harm" and
  "chest  pain!!" matches "chest pain". An apostrophe is kept only inside a word ("can't").
- A phrase that starts (ends) with a letter or digit of a script that spaces its words (Latin,
  Cyrillic, Greek, Arabic, ...) must start (end) on a word boundary: "pain" never matches
  "painting". A boundary is the text's edge, a space, an apostrophe ("hopital" matches
  "l'hôpital") or a character of an unspaced script ("pain" matches "我pain了").
- A phrase made of unspaced-script characters (Chinese, Japanese, Korean, Thai, Lao, Khmer,
  Myanmar) matches anywhere, as a substring: "胸痛" matches "我胸痛三天了". Korean spaces its
  words but glues particles onto them ("가슴통증이"), so Hangul is treated as unspaced too.
- A phrase ending in an ASCII letter also matches with "s" or "es" after it ("chest pains",
  "rashes"): an English plural, cheap to allow and hard to abuse. Nothing else is stemmed.

Matching is deliberately crude: it never understands negation ("我不想自杀" still fires "自杀",
"no chest pain" still fires "chest pain"). A red flag that fires needlessly costs a doctor a
glance; one that stays silent can cost a life.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from triage.models import Urgency

# Characters people type for an apostrophe; all become "'". The acute accent and the backtick are
# here because keyboards without an apostrophe key produce them ("can´t"), and the acute accent
# must be caught before NFKD turns it into a space plus a combining mark.
APOSTROPHES = "\u2018\u2019\u201b\u02b9\u02bc\u0060\u00b4\u2032"

# Code point ranges of scripts written without spaces between words (plus Hangul, see the module
# docstring). Phrases in these scripts match as substrings; a character from them also counts as
# a word boundary for a neighbouring phrase in a spaced script.
UNSPACED_RANGES: tuple[tuple[int, int], ...] = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x1780, 0x17FF),  # Khmer
    (0x2E80, 0x2FDF),  # CJK and Kangxi radicals
    (0x3005, 0x3007),  # ideographic iteration mark, closing mark, number zero
    (0x3040, 0x31FF),  # Hiragana, Katakana, Bopomofo, Hangul compatibility jamo, ...
    (0x3400, 0x4DBF),  # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xA960, 0xA97F),  # Hangul Jamo Extended-A
    (0xAC00, 0xD7FF),  # Hangul syllables, Hangul Jamo Extended-B
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0x20000, 0x3FFFF),  # CJK Unified Ideographs Extensions B and later, compatibility supplement
)

# The English plural endings a phrase ending in an ASCII letter may carry in the text.
PLURAL_SUFFIXES = ("s", "es")

_APOSTROPHE_TABLE = str.maketrans(dict.fromkeys(APOSTROPHES, "'"))

# Shipped defaults, keyed by department kind. Deliberately short: each phrase is unambiguous and
# calls for a doctor at once (emergency) or soon (urgent). A department's configured phrases
# replace these; the kinds do not inherit from each other.
DEFAULT_RED_FLAGS: dict[str, dict[str, Urgency]] = {
    "general": {
        # cardiac
        "chest pain": Urgency.EMERGENCY,
        "胸痛": Urgency.EMERGENCY,
        "胸口痛": Urgency.EMERGENCY,  # the everyday way to say it; "胸痛" is not a substring
        # breathing ("cant" because people in distress skip the apostrophe)
        "can't breathe": Urgency.EMERGENCY,
        "cant breathe": Urgency.EMERGENCY,
        "cannot breathe": Urgency.EMERGENCY,
        "呼吸困难": Urgency.EMERGENCY,
        "喘不过气": Urgency.EMERGENCY,
        # bleeding
        "severe bleeding": Urgency.EMERGENCY,
        "大出血": Urgency.EMERGENCY,
        # stroke (FAST: face, arms, speech)
        "face drooping": Urgency.EMERGENCY,
        "slurred speech": Urgency.EMERGENCY,
        "口角歪斜": Urgency.EMERGENCY,
        "口齿不清": Urgency.EMERGENCY,
        # consciousness
        "unconscious": Urgency.EMERGENCY,
        "昏迷": Urgency.EMERGENCY,
        # fever
        "high fever": Urgency.URGENT,
        "高烧": Urgency.URGENT,
        "高热": Urgency.URGENT,
    },
    "paediatrics": {
        "not breathing": Urgency.EMERGENCY,
        "stopped breathing": Urgency.EMERGENCY,
        "不呼吸": Urgency.EMERGENCY,
        "没有呼吸": Urgency.EMERGENCY,
        "seizure": Urgency.EMERGENCY,
        "convulsion": Urgency.EMERGENCY,
        "抽搐": Urgency.EMERGENCY,
        "惊厥": Urgency.EMERGENCY,
        "unresponsive": Urgency.EMERGENCY,
        "叫不醒": Urgency.EMERGENCY,
        "high fever": Urgency.URGENT,
        "高烧": Urgency.URGENT,
        "dehydration": Urgency.URGENT,
        "dehydrated": Urgency.URGENT,
        "脱水": Urgency.URGENT,
    },
    "psych": {
        "suicidal": Urgency.EMERGENCY,  # also covers "suicidal thoughts", "feeling suicidal"
        "suicide": Urgency.EMERGENCY,
        "kill myself": Urgency.EMERGENCY,
        "end my life": Urgency.EMERGENCY,
        "自杀": Urgency.EMERGENCY,  # also covers "想自杀"
        "不想活了": Urgency.EMERGENCY,
        "self-harm": Urgency.URGENT,  # punctuation folds: also "self harm"
        "harm myself": Urgency.URGENT,
        "自残": Urgency.URGENT,
        "自伤": Urgency.URGENT,
    },
}


@dataclass(frozen=True)
class RedFlagHit:
    """One configured phrase found in a text, and the level it raises the ticket to."""

    phrase: str  # exactly as configured, so the doctor sees the department's own wording
    urgency: Urgency


@dataclass(frozen=True)
class _Pattern:
    hit: RedFlagHit
    key: str  # the normalised phrase
    bounded_start: bool
    bounded_end: bool
    suffixes: tuple[str, ...]  # what may follow the key before the end boundary


def normalise(text: str) -> str:
    """Fold `text` to the form phrases are matched in (see the module docstring).

    Steps: unify apostrophes; NFKD (which also folds full- and half-width forms); casefold; NFKD
    again (casefolding can produce decomposable characters); drop combining marks; turn every
    character that is not a letter, mark or number into a space, except an apostrophe inside a
    word; collapse spaces; NFC (recomposes Hangul syllables, so one syllable never matches part
    of another).
    """
    text = unicodedata.normalize("NFKD", text.translate(_APOSTROPHE_TABLE))
    text = unicodedata.normalize("NFKD", text.casefold())
    chars = [
        ch if ch == "'" or _is_word_char(ch) else " "
        for ch in text
        if not unicodedata.combining(ch)
    ]
    for i, ch in enumerate(chars):
        if ch == "'" and not (
            0 < i < len(chars) - 1 and _is_word_char(chars[i - 1]) and _is_word_char(chars[i + 1])
        ):
            chars[i] = " "
    return unicodedata.normalize("NFC", " ".join("".join(chars).split()))


class RedFlagMatcher:
    """Finds a department's red-flag phrases in free text. Immutable once built.

    `flags` maps each phrase, as configured, to the level it raises a ticket to. Raises
    ValueError for a phrase that is empty once normalised, two phrases that normalise to the
    same text, or a phrase that raises to routine (which raises nothing).
    """

    def __init__(self, flags: Mapping[str, Urgency]) -> None:
        by_key: dict[str, str] = {}
        patterns: list[_Pattern] = []
        for phrase, level in flags.items():
            urgency = Urgency(level)
            key = normalise(phrase)
            if not key:
                raise ValueError(f"red-flag phrase {phrase!r} has no letters or digits")
            if key in by_key:
                raise ValueError(
                    f"red-flag phrases {by_key[key]!r} and {phrase!r} are the same once "
                    "case, accents and punctuation are ignored"
                )
            if urgency is Urgency.ROUTINE:
                raise ValueError(f"red-flag phrase {phrase!r} raises to routine: that is no flag")
            by_key[key] = phrase
            bounded_end = _is_spaced_word_char(key[-1])
            patterns.append(
                _Pattern(
                    hit=RedFlagHit(phrase=phrase, urgency=urgency),
                    key=key,
                    bounded_start=_is_spaced_word_char(key[0]),
                    bounded_end=bounded_end,
                    suffixes=("", *PLURAL_SUFFIXES)
                    if bounded_end and "a" <= key[-1] <= "z"
                    else ("",),
                )
            )
        patterns.sort(key=lambda p: (-p.hit.urgency, p.hit.phrase))
        self._patterns = tuple(patterns)
        self._flags = MappingProxyType({p.hit.phrase: p.hit.urgency for p in patterns})

    @property
    def flags(self) -> Mapping[str, Urgency]:
        """The phrases as configured, read-only."""
        return self._flags

    def match(self, text: str) -> tuple[RedFlagHit, ...]:
        """Every configured phrase found in `text`, once each: most urgent first, then by phrase."""
        folded = normalise(text)
        return tuple(p.hit for p in self._patterns if _occurs(p, folded))

    def highest(self, text: str) -> RedFlagHit | None:
        """The most urgent phrase found in `text` (ties: the first by phrase), or None."""
        folded = normalise(text)
        return next((p.hit for p in self._patterns if _occurs(p, folded)), None)

    def __repr__(self) -> str:
        return f"RedFlagMatcher({dict(self._flags)!r})"


def _occurs(pattern: _Pattern, text: str) -> bool:
    key = pattern.key
    start = text.find(key)
    while start != -1:
        end = start + len(key)
        if not pattern.bounded_start or _is_boundary(text, start - 1):
            if not pattern.bounded_end:
                return True
            for suffix in pattern.suffixes:
                if text.startswith(suffix, end) and _is_boundary(text, end + len(suffix)):
                    return True
        start = text.find(key, start + 1)
    return False


def _is_boundary(text: str, index: int) -> bool:
    """Whether the character at `index` (or the edge of `text`) separates words."""
    return not 0 <= index < len(text) or not _is_spaced_word_char(text[index])


def _is_word_char(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LMN"


def _is_spaced_word_char(ch: str) -> bool:
    return _is_word_char(ch) and not _is_unspaced(ch)


def _is_unspaced(ch: str) -> bool:
    code = ord(ch)
    return any(low <= code <= high for low, high in UNSPACED_RANGES)
