"""Resolver accuracy on the development set in tests/resolver_dev_set.tsv.

The set holds ~330 hashtags of every kind the resolver must handle, each with the label
a careful annotator gives a photo carrying it. `benchmarks/resolver.py` prints the same
figures; this test keeps them from regressing.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from weaksup.hashtags.normalize import normalize_hashtag
from weaksup.hashtags.resolver import Resolver

DEV_SET = Path(__file__).parent / "resolver_dev_set.tsv"


def load_dev_set(path: Path = DEV_SET) -> list[tuple[str, str | None, str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("# "):
            continue
        tag, expected, kind = line.split("\t")
        rows.append((tag, None if expected == "-" else expected, kind))
    return rows


@pytest.fixture(scope="module")
def resolver() -> Resolver:
    return Resolver()


def first_sense_baseline(resolver: Resolver, tag: str) -> str | None:
    """Lemmatise the normalised tag and take WordNet's first noun sense."""
    idx = resolver.index
    lemmas = idx.lemmatize_noun(normalize_hashtag(tag))
    return idx.names[idx.noun_senses(lemmas[0])[0][0]] if lemmas else None


def test_dev_set_is_well_formed(resolver: Resolver) -> None:
    rows = load_dev_set()
    assert len(rows) >= 250
    assert len({t for t, _, _ in rows}) == len(rows), "duplicate tags"
    for tag, expected, kind in rows:
        if expected is not None:
            assert expected in resolver.index, f"{tag}: unknown synset {expected}"
    kinds = Counter(k for _, _, k in rows)
    assert set(kinds) == {"plain", "plural", "surface", "compound", "affix", "ambiguous",
                          "filler", "junk"}


def test_dev_set_accuracy(resolver: Resolver) -> None:
    rows = load_dev_set()
    misses, base_ok = [], 0
    for tag, expected, _ in rows:
        res = resolver.resolve(tag)
        if (res.synset if res else None) != expected:
            misses.append((tag, expected, res.synset if res else None))
        base_ok += first_sense_baseline(resolver, tag) == expected
    acc = 1 - len(misses) / len(rows)
    baseline = base_ok / len(rows)
    assert acc >= 0.95, f"accuracy {acc:.3f}; misses: {misses}"
    # The set is not trivial: lemmatise-and-take-the-first-sense gets far less.
    assert baseline < 0.75, f"baseline {baseline:.3f}"


def test_every_kind_is_mostly_right(resolver: Resolver) -> None:
    per_kind: dict[str, list[bool]] = {}
    for tag, expected, kind in load_dev_set():
        res = resolver.resolve(tag)
        per_kind.setdefault(kind, []).append((res.synset if res else None) == expected)
    for kind, oks in per_kind.items():
        assert sum(oks) / len(oks) >= 0.9, (kind, sum(oks), len(oks))
