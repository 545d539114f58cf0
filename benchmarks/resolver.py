"""Resolver speed (and dev-set accuracy): prints the figures the issue asks for.

    .venv/bin/python benchmarks/resolver.py [--tags 100000] [--stream 2000000]

Index build time, index load time, Resolver set-up time, cold resolution rate over
unique hashtags (a mix of plain nouns, plurals, one-word compounds, Instagram-affixed and
filler tags drawn from WordNet itself), cached rate over a Zipfian stream of those tags,
and accuracy against tests/resolver_dev_set.tsv next to the first-sense baseline.
Targets on one core: load <= 1 s, >= 50,000 tags/s cold, >= 1,000,000 tags/s cached.

Rates are per CPU-second of this process (time.process_time), i.e. what one core does,
because the machine is shared; wall-clock figures are printed beside them.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from weaksup import wordnet  # noqa: E402
from weaksup.hashtags import idioms  # noqa: E402
from weaksup.hashtags.normalize import normalize_hashtag  # noqa: E402
from weaksup.hashtags.resolver import Resolver  # noqa: E402


def make_tags(index: wordnet.WordNetIndex, n: int, seed: int = 0) -> list[str]:
    """n unique hashtags, drawn the way hashtags occur: base words by a Zipfian law.

    Base nouns are ranked by WordNet sense-tag frequency and drawn with Zipf exponent 1.1,
    then written as: 40% plain, 20% plural, 15% one-word compound (a multiword lemma),
    15% Instagram-affixed, 10% filler or adjective; a fifth are capitalised. Duplicates
    are dropped, so every tag is resolved once, cold.
    """
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)

    def by_frequency(lemmas, pos="noun"):
        return sorted(lemmas, key=lambda l: (-(index.pos_count(l, pos) or 0), l))

    single = by_frequency(l for l in index.noun_lemmas() if l.isalpha())
    multi = by_frequency(l for l in index.noun_lemmas() if "_" in l and l.replace("_", "").isalpha())
    adjectives = by_frequency((l for l in index.lemmas_of("adj") if l.isalpha()), "adj")
    plural_exc = sorted(index.noun_exceptions)
    filler = sorted(idioms.FILLER)
    suffixes = ["sofinstagram", "stagram", "lover", "oftheday", "time", "life", "porn"]

    def zipf(pool):
        while True:
            r = int(nprng.zipf(1.1))
            if r <= len(pool):
                return pool[r - 1]

    makers = [
        (0.40, lambda: zipf(single)),
        (0.20, lambda: rng.choice(plural_exc) if rng.random() < 0.1 else zipf(single) + "s"),
        (0.15, lambda: zipf(multi).replace("_", "")),
        (0.15, lambda: zipf(single) + rng.choice(suffixes) if rng.random() < 0.8
         else "insta" + zipf(single)),
        (0.10, lambda: zipf(adjectives) if rng.random() < 0.8
         else rng.choice(filler) + str(rng.randrange(1000))),
    ]
    weights = [w for w, _ in makers]
    out: set[str] = set()
    while len(out) < n:
        _, make = rng.choices(makers, weights)[0]
        tag = make()
        if rng.random() < 0.2:
            tag = tag.capitalize()
        out.add(tag)
    tags = sorted(out)
    rng.shuffle(tags)
    return tags


class Timer:
    """Wall and CPU time of a block."""

    def __enter__(self):
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.w0
        self.cpu = time.process_time() - self.c0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tags", type=int, default=100_000)
    ap.add_argument("--stream", type=int, default=2_000_000)
    args = ap.parse_args()

    src = wordnet.locate()
    with tempfile.TemporaryDirectory() as tmp:
        with Timer() as t:
            wordnet.build_index(src, Path(tmp) / "index.npz")
        print(f"index build:   {t.cpu:6.2f} s CPU, {t.wall:6.2f} s wall  (from {src})")
    path = wordnet.index_path()
    if not path.is_file():
        wordnet.load_index()
    loads = []
    for _ in range(3):
        with Timer() as t:
            index = wordnet.WordNetIndex(path)
        loads.append(t)
    best = min(loads, key=lambda t: t.cpu)
    print(f"index load:    {best.cpu:6.3f} s CPU, {best.wall:6.3f} s wall  (best of 3; "
          f"{path.stat().st_size / 2**20:.1f} MiB)")
    with Timer() as t:
        resolver = Resolver(index=index)
    print(f"resolver init: {t.cpu:6.3f} s CPU, {t.wall:6.3f} s wall  "
          "(compound index, segmentation vocabulary)")

    # Cold: a fresh resolver (empty caches) per round, each on its own set of tags.
    rounds = []
    for seed in range(3):
        tags = make_tags(index, args.tags, seed=seed)
        fresh = Resolver(index=index)
        with Timer() as t:
            results = [fresh.resolve(tag) for tag in tags]
        rounds.append((t, sum(r is not None for r in results)))
    t, hit = min(rounds, key=lambda r: r[0].cpu)
    print(f"cold:          {len(tags) / t.cpu:10,.0f} unique tags/s per core "
          f"({len(tags) / t.wall:,.0f}/s wall; best of 3 rounds of {len(tags):,} tags, "
          f"{hit / len(tags):.0%} resolved; rounds "
          + ", ".join(f"{len(tags) / r[0].cpu:,.0f}" for r in rounds) + ")")
    for tag in tags:
        resolver.resolve(tag)

    # A Zipfian stream over the same tags (exponent 1.1), all now cached.
    rng = np.random.default_rng(0)
    ranks = rng.zipf(1.1, size=args.stream * 2)
    ranks = ranks[ranks <= len(tags)][: args.stream] - 1
    stream = [tags[i] for i in ranks.tolist()]
    resolve = resolver.resolve
    with Timer() as t:
        for tag in stream:
            resolve(tag)
    print(f"cached:        {len(stream) / t.cpu:10,.0f} tags/s per core "
          f"({len(stream) / t.wall:,.0f}/s wall; {len(stream):,} Zipfian lookups, "
          f"{len(set(stream)):,} distinct)")

    dev = REPO / "tests" / "resolver_dev_set.tsv"
    rows = [l.split("\t") for l in dev.read_text(encoding="utf-8").splitlines()
            if l.strip() and not l.startswith("# ")]
    ok = base = 0
    for tag, expected, _kind in rows:
        expected = None if expected == "-" else expected
        res = resolver.resolve(tag)
        ok += (res.synset if res else None) == expected
        lemmas = index.lemmatize_noun(normalize_hashtag(tag))
        first = index.names[index.noun_senses(lemmas[0])[0][0]] if lemmas else None
        base += first == expected
    print(f"dev accuracy:  {ok / len(rows):.3f}  (first-sense baseline {base / len(rows):.3f}, "
          f"{len(rows)} tags)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
