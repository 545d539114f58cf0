"""Hashtag surface forms: Unicode normalisation, case, separators, camelCase, accents.

`normalize_hashtag` gives the canonical surface form used as a key everywhere (counts,
vocabularies): NFKC (so full-width `ＤＯＧ` is `dog`), lowercase, separators dropped.
`hashtag_words` keeps the word boundaries the user wrote (`Hot-Dog`, `hotDog`,
`ice_cream`), which the resolver uses to find multiword WordNet lemmas.

Letters are never spelt as other letters on the way to the resolver: accents fold
(`café` -> `cafe`, by the resolver's `strip_accents`), but a letter without an accent to
drop stays as it is (`ß`, `æ`, `ø`, `ł`, `þ`, `đ`), so `#ß` is not read as `ss`, the plural
of `s` (sulfur). Of all Unicode letters only `ß` and `ẞ` become other letters under full
case folding (`ß` -> `ss`); the words keep them, while the key of `normalize_hashtag` keeps
full case folding, under which `#Straße` and `#STRASSE` are one hashtag.
"""

from __future__ import annotations

import re
import unicodedata

# Characters users write between the words of one hashtag.
SEPARATORS = "_-.'’‐‑‒–—·"
_SEP_RE = re.compile(r"[\s_\-.'’‐‑‒–—·]+")
# Word boundaries inside a tag: separators, and anything that is not a letter or digit
# (emoji, punctuation), which hashtags cannot contain but pasted tag lists do.
_WORD_SPLIT_RE = re.compile(r"[\W_]+")
# Invisible format characters (zero-width joiners, variation selectors, BOM) carry no letters.
_INVISIBLE_RE = re.compile(r"[\u200b-\u200f\u2060-\u2064\ufe00-\ufe0f\ufeff]")
# camelCase / PascalCase / ACRONYMWord boundaries and letter/digit boundaries.
_CAMEL_RE = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])")
# Longest hashtag we try to interpret; Instagram caps tags well below this.
MAX_TAG_CHARS = 100


def prepare_text(tag: str) -> str:
    t = unicodedata.normalize("NFKC", tag)
    t = _INVISIBLE_RE.sub("", t)
    return t.strip().lstrip("#").strip()


def normalize_hashtag(tag: str) -> str:
    """Canonical surface form: NFKC, leading '#' removed, lowercase, separators dropped.

    Accents are kept (`café` stays `café`); the resolver tries the unaccented form too.
    """
    return _SEP_RE.sub("", prepare_text(tag)).casefold()


def _fold(text: str) -> str:
    """Case folding that keeps each letter one letter: casefold, but `ß`/`ẞ` -> `ß`, not `ss`."""
    folded = text.casefold()
    if len(folded) == len(text):
        return folded
    # Some letter expanded (ß -> ss, ǰ -> j + caron, ...): lowercase those letters alone;
    # an expanded accent still folds later in strip_accents.
    return "".join(f if len(f := c.casefold()) == 1 else c.lower() for c in text)


def hashtag_words(tag: str) -> list[str]:
    """The lowercase words of a hashtag as written: split at separators and camelCase.

    `#Hot-Dog` -> ['hot', 'dog']; `#hotDog` -> ['hot', 'dog']; `#dogs` -> ['dogs'].
    """
    if tag.isascii() and tag.isalpha() and (tag.islower() or tag[1:].islower()):
        return [tag.lower()]  # the common case: one plain or capitalised word
    out: list[str] = []
    for part in _WORD_SPLIT_RE.split(prepare_text(tag)):
        if part:
            out += [_fold(w) for w in _CAMEL_RE.split(part) if w]
    return out


def strip_accents(text: str) -> str:
    """`café` -> `cafe`: drop combining marks after canonical decomposition."""
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize(
        "NFC", "".join(c for c in decomposed if not unicodedata.combining(c))
    )
