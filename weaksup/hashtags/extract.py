"""Hashtags from captions, and WordNet nouns from captions that carry no hashtags."""

from __future__ import annotations

import re

from weaksup.hashtags.idioms import STOPWORDS
from weaksup.hashtags.normalize import prepare_text
from weaksup.wordnet import load_index

# A hashtag is '#' (or full-width '＃') followed by word characters in any script, as
# Instagram and Twitter parse them; it must not be glued to a preceding word ("a#b",
# "&#39;" in HTML) and stops at whitespace, punctuation or the next '#'.
HASHTAG_RE = re.compile(r"(?<![\w&#＃])[#＃]([\w\u0300-\u036f\u200c\u200d]+)")
_WORD_RE = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")


def extract_hashtags(caption: str) -> list[str]:
    """The hashtags of a caption in order of appearance, without '#', as written.

    >>> extract_hashtags("Sunday walk #DogsOfInstagram #golden_retriever,#café!")
    ['DogsOfInstagram', 'golden_retriever', 'café']
    """
    if not caption:
        return []
    return [m.group(1) for m in HASHTAG_RE.finditer(caption) if not m.group(1).isdigit()]


def extract_nouns(caption: str) -> list[str]:
    """Content words of a caption that are WordNet nouns, lemmatised, in order, unique.

    Adjacent words that form a multiword lemma are joined ("golden retriever" ->
    "golden_retriever"). Words used mostly as another part of speech in WordNet's
    sense-tagged corpus (e.g. "running", "beautiful") and function words are skipped.
    Hashtags in the caption are ignored (use `extract_hashtags`).
    """
    idx = load_index()
    text = HASHTAG_RE.sub(" ", prepare_text(caption or ""))
    words = [w.casefold().replace("’", "'") for w in _WORD_RE.findall(text)]
    out: list[str] = []
    i = 0
    while i < len(words):
        found = None
        # Longest multiword lemma starting here (up to 4 words), head word lemmatised.
        for n in range(min(4, len(words) - i), 1, -1):
            joined = "_".join(words[i:i + n])
            lemmas = idx.lemmatize_noun(joined)
            if lemmas:
                found, i = lemmas[0], i + n
                break
        if found is None:
            w = words[i]
            i += 1
            if w in STOPWORDS or len(w) < 2:
                continue
            for lemma in idx.lemmatize_noun(w):
                if mostly_noun(idx, w, lemma):
                    found = lemma
                    break
        if found is not None and found not in out:
            out.append(found)
    return out


def _verb_bases(form: str) -> list[str]:
    """Candidate verb lemmas of an inflected form (running -> run, baked -> bake)."""
    out = [form]
    for suffix in ("ing", "ed", "es", "s"):
        if form.endswith(suffix) and len(form) > len(suffix) + 1:
            stem = form[: -len(suffix)]
            out += [stem, stem + "e"]
            if len(stem) > 2 and stem[-1] == stem[-2]:  # running -> run
                out.append(stem[:-1])
    return out


def mostly_noun(idx, form: str, lemma: str) -> bool:
    """Whether a caption word is used as a noun, judged by WordNet's sense-tag counts."""
    noun = idx.pos_count(lemma, "noun") or 0
    other = max((idx.pos_count(form, p) or 0) for p in ("adj", "adv"))
    other = max(other, *((idx.pos_count(b, "verb") or 0) for b in _verb_bases(form)))
    return noun >= other
