"""EmojiGram concepts and the hashtags users would write for them.

A concept is one fully-qualified emoji from Unicode's `emoji-test.txt` that is a single
code point (U+FE0F aside) -- which leaves out skin-tone variants, ZWJ sequences, flags and
keycaps, none of which two of our artists draw as one glyph -- outside the "Component"
group, with a CLDR English name, drawn by at least two of the three artists.

Hashtags come from the concept's real annotations: the CLDR name (weight 4), CLDR
keywords (weight 2 shared) and EmojiOne's short names and keywords (weight 1
shared), each written the way users write tags: mostly lower-case joined words
(#hotdog), sometimes plural (#hotdogs), CamelCase, Title or upper case, an underscore
(#hot_dog), or with an Instagram affix (#dogsofinstagram, #instadog, #doglover,
#dogstagram, #dogoftheday). Tags are ASCII letters, digits and underscores only:
accents are folded (pinata), apostrophes dropped (mansshoe).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Sequence

import numpy as np

from weaksup.corpus.emojigram import assets


@dataclasses.dataclass(frozen=True)
class Concept:
    """One emoji concept with its annotations and the artists that draw it."""

    id: str  # slug of the CLDR name, e.g. "hot_dog"
    emoji: str  # fully-qualified string, e.g. "🌭" or "☕" / "❤️"
    name: str  # CLDR name ("hot dog")
    keywords: tuple[str, ...]  # CLDR keywords
    emojione_keywords: tuple[str, ...]  # EmojiOne short names and keywords (filtered)
    group: str
    subgroup: str
    artists: tuple[str, ...]  # artists (of assets.ARTISTS) that draw it

    @property
    def codepoint(self) -> int:
        return ord(self.emoji[0])


# Single-codepoint filler tags that popular-tag lists always show, most popular first
# (their popularity is Zipfian too). Several are WordNet nouns (love, art, food): realistic
# label noise the vocabulary has to live with.
FILLER_TAGS: tuple[str, ...] = (
    "love", "instagood", "photooftheday", "fashion", "beautiful", "happy", "cute", "tbt",
    "like4like", "followme", "picoftheday", "follow", "me", "selfie", "summer", "art",
    "instadaily", "friends", "repost", "nature", "girl", "fun", "style", "smile", "food",
    "instalike", "likeforlike", "family", "travel", "fitness", "igers", "tagsforlikes",
    "nofilter", "life", "beauty", "amazing", "instamood", "photography", "vscocam", "sun",
    "photo", "music", "beach", "followforfollow", "bestoftheday", "sky", "sunset", "l4l",
    "f4f", "swag", "motivation", "instapic", "throwbackthursday", "ootd", "happiness",
    "weekend", "goodvibes", "mood", "blessed", "vibes", "instagram", "lol", "yolo", "tflers",
)

# Affixes users attach to a word; "{p}" is the plural, "{w}" the word.
AFFIXES: tuple[str, ...] = (
    "{p}ofinstagram", "insta{w}", "{w}lover", "{w}stagram", "{w}oftheday", "{w}love",
    "{w}life", "my{w}", "{w}gram", "{p}ofig", "{w}time", "i love{w}",
)

_STOP = frozenset(
    "a an and the of with in on at to for by from or as is be face symbol parties "
    "button sign mark".split()
)


def words(text: str) -> list[str]:
    """ASCII lower-case words of an annotation ("man’s shoe" -> ["mans", "shoe"])."""
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    folded = re.sub(r"['’`]", "", folded.lower())
    return [w for w in re.split(r"[^a-z0-9]+", folded) if w]


def plural(word: str) -> str:
    """A plain English plural, as users write it (no dictionary of irregulars)."""
    if word.endswith("s") and not word.endswith("ss"):
        return word  # already plural (#books, #glasses stay)
    if re.search(r"(s|x|z|ch|sh)$", word):
        return word + "es"
    if re.search(r"[^aeiou]y$", word):
        return word[:-1] + "ies"
    return word + "s"


def surface(term: Sequence[str], rng: np.random.Generator) -> str:
    """One user-style hashtag (without '#') for a term given as its words."""
    term = list(term)
    u = rng.random()
    if u < 0.55:
        parts = term
    elif u < 0.70:
        parts = term[:-1] + [plural(term[-1])]
    elif u < 0.95 and len(term) <= 2:
        affix = AFFIXES[int(rng.integers(len(AFFIXES)))]
        joined = "".join(term)
        parts = [affix.replace(" ", "").format(w=joined, p=plural(joined))]
    elif len(term) > 1:
        return "_".join(term)
    else:
        parts = term
    v = rng.random()
    if v < 0.75:
        return "".join(parts)
    if v < 0.87:
        return "".join(p.capitalize() for p in parts)  # CamelCase (Title when one word)
    if v < 0.95:
        return "".join(parts).capitalize()
    return "".join(parts).upper()


def _parse_emoji_test(path) -> list[tuple[str, str, str]]:
    """(emoji, group, subgroup) of each fully-qualified single-code-point emoji."""
    out, group, subgroup = [], "", ""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise assets.AssetError(f"{path}: unreadable: {e}") from None
    for line in lines:
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        elif line.startswith("# subgroup:"):
            subgroup = line.split(":", 1)[1].strip()
        elif line and not line.startswith("#"):
            fields, _, rest = line.partition(";")
            if rest.split("#", 1)[0].strip() != "fully-qualified":
                continue
            cps = [int(c, 16) for c in fields.split()]
            if len([c for c in cps if c != 0xFE0F]) != 1 or group == "Component":
                continue
            out.append(("".join(chr(c) for c in cps), group, subgroup))
    if not out:
        raise assets.AssetError(f"{path}: no fully-qualified emoji found")
    return out


def _parse_cldr(path) -> dict[str, tuple[str, list[str]]]:
    """emoji without U+FE0F -> (name, keywords) from CLDR annotations."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        raise assets.AssetError(f"{path}: unreadable CLDR annotations: {e}") from None
    names: dict[str, str] = {}
    keywords: dict[str, list[str]] = {}
    for el in root.iter("annotation"):
        cp, text = el.get("cp"), (el.text or "").strip()
        if not cp or not text:
            continue
        if el.get("type") == "tts":
            names[cp] = text
        else:
            keywords[cp] = [k.strip() for k in text.split("|") if k.strip()]
    return {cp: (name, keywords.get(cp, [])) for cp, name in names.items()}


def _parse_emojione(path) -> dict[int, list[str]]:
    """code point -> EmojiOne short name, aliases and keywords."""
    index = assets.read_json(path)
    if not isinstance(index, dict):
        raise assets.AssetError(f"{path}: expected a JSON object of emoji")
    out: dict[int, list[str]] = {}
    for entry in index.values():
        if not isinstance(entry, dict) or "-" in str(entry.get("unicode", "-")):
            continue
        try:
            cp = int(entry["unicode"], 16)
        except (KeyError, ValueError):
            continue
        short = [str(entry.get("shortname", ""))] + [str(a) for a in entry.get("aliases", [])]
        short = [re.sub(r"\d+$", "", s.strip(":")).replace("_", " ") for s in short]
        # EmojiOne's "name" is mostly the Unicode character name ("negative squared latin
        # capital letter a"), which nobody types as a tag; short names and keywords are.
        out[cp] = short + [str(k) for k in entry.get("keywords", [])]
    return out


def _slug(name: str) -> str:
    return "_".join(words(name)) or "emoji"


@functools.cache
def load_concepts() -> tuple[Concept, ...]:
    """All EmojiGram concepts, in emoji-test.txt order (stable across runs)."""
    cldr = _parse_cldr(assets.asset_path("cldr"))
    eo_path = assets.asset_path("emojione") / "config" / "index.json"
    emojione = _parse_emojione(eo_path)
    cover = {a: assets.coverage(a) for a in assets.ARTISTS}
    concepts, seen = [], set()
    for emoji, group, subgroup in _parse_emoji_test(assets.asset_path("emoji-test")):
        bare = emoji.replace("\ufe0f", "")
        if bare not in cldr:
            continue
        cp = ord(bare)
        artists = tuple(a for a in assets.ARTISTS if cp in cover[a])
        if len(artists) < 2:
            continue
        name, kws = cldr[bare]
        kw_words = {" ".join(words(name))}
        cldr_kw = []
        for k in kws:
            w = " ".join(words(k))
            if w and w not in kw_words:
                kw_words.add(w)
                cldr_kw.append(w)
        eo_kw = []
        for k in emojione.get(cp, []):
            w = " ".join(words(k))
            if len(w) >= 3 and w not in _STOP and w not in kw_words:
                kw_words.add(w)
                eo_kw.append(w)
        cid = _slug(name)
        if cid in seen:
            cid = f"{cid}_{cp:x}"
        seen.add(cid)
        concepts.append(
            Concept(cid, emoji, name, tuple(cldr_kw), tuple(eo_kw), group, subgroup, artists)
        )
    return tuple(concepts)


def concept_terms(concept: Concept) -> tuple[list[list[str]], np.ndarray]:
    """The concept's hashtag terms (as word lists) and their sampling probabilities."""
    terms = [words(concept.name)]
    weights = [4.0]
    for group, total in ((concept.keywords, 2.0), (concept.emojione_keywords, 1.0)):
        for k in group:
            terms.append(k.split())
            weights.append(total / len(group))
    p = np.asarray(weights) / sum(weights)
    return terms, p


def concept_hashtags(concept: Concept, rng: np.random.Generator, n: int) -> list[str]:
    """`n` distinct user-style hashtags for a concept (fewer if it has fewer terms)."""
    terms, cdf = _terms_cached(concept.id)
    n = min(n, len(terms))
    picks: list[int] = []
    while len(picks) < n:  # weighted sampling without replacement, by rejection
        k = min(int(np.searchsorted(cdf, rng.random(), side="right")), len(terms) - 1)
        if k not in picks:
            picks.append(k)
    tags, seen = [], set()
    for k in picks:
        tag = surface(terms[k], rng)
        if tag.lower() not in seen:
            seen.add(tag.lower())
            tags.append(tag)
    return tags


@functools.cache
def concepts_by_id() -> dict[str, Concept]:
    """Concept id -> Concept."""
    return {c.id: c for c in load_concepts()}


@functools.cache
def _terms_cached(concept_id: str) -> tuple[list[list[str]], np.ndarray]:
    terms, p = concept_terms(concepts_by_id()[concept_id])
    return terms, np.cumsum(p)
