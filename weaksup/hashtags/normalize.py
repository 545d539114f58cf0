"""Hashtag surface forms: Unicode normalisation, case, separators, camelCase, accents.

`normalize_hashtag` gives the canonical surface form used as a key everywhere (counts,
vocabularies): NFKC (so full-width `ＤＯＧ` is `dog`), lowercase, separators dropped.
`hashtag_words` keeps the word boundaries the user wrote (`Hot-Dog`, `hotDog`,
`ice_cream`), which the resolver uses to find multiword WordNet lemmas.
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


def _prepare(tag: str) -> str:
    t = unicodedata.normalize("NFKC", tag)
    t = _INVISIBLE_RE.sub("", t)
    return t.strip().lstrip("#").strip()


def normalize_hashtag(tag: str) -> str:
    """Canonical surface form: NFKC, leading '#' removed, lowercase, separators dropped.

    Accents are kept (`café` stays `café`); the resolver tries the unaccented form too.
    """
    return _SEP_RE.sub("", _prepare(tag)).casefold()


def hashtag_words(tag: str) -> list[str]:
    """The lowercase words of a hashtag as written: split at separators and camelCase.

    `#Hot-Dog` -> ['hot', 'dog']; `#hotDog` -> ['hot', 'dog']; `#dogs` -> ['dogs'].
    """
    if tag.isascii() and tag.isalpha() and (tag.islower() or tag[1:].islower()):
        return [tag.lower()]  # the common case: one plain or capitalised word
    out: list[str] = []
    for part in _WORD_SPLIT_RE.split(_prepare(tag)):
        if part:
            out += [w.casefold() for w in _CAMEL_RE.split(part) if w]
    return out


def strip_accents(text: str) -> str:
    """`café` -> `cafe`: drop combining marks after canonical decomposition."""
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize(
        "NFC", "".join(c for c in decomposed if not unicodedata.combining(c))
    )
