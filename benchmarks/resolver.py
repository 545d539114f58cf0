"""Resolver speed (and dev-set accuracy): prints the figures the issue asks for.

    .venv/bin/python benchmarks/resolver.py [--tags 100000] [--stream 2000000]
        [--posts 20000] [--reference COMMIT] [--rounds 5]

Index build time, index load time, Resolver set-up time, cold resolution rate over
unique hashtags (a mix of plain nouns, plurals, one-word compounds, Instagram-affixed and
filler tags drawn from WordNet itself), cached rate over a Zipfian stream of those tags,
and accuracy against tests/resolver_dev_set.tsv next to the first-sense baseline.
Targets on one core: load <= 1 s, >= 50,000 tags/s cold, >= 1,000,000 tags/s cached.

Then the post (context) case: accuracy on the ambiguous tags of
benchmarks/resolver_context_dev.tsv (posts whose senses depend on the other tags),
next to the first-sense baseline and, with --reference, the resolver of an earlier
commit (its package exported with `git archive` and run in a subprocess); and the rate
of `resolve_post` on 5-tag posts with the caches warm, for posts drawn from the same
Zipfian tags and for posts of ambiguous tags only. Target: >= 20,000 posts/s per core.
With --reference, the ambiguous-post rate of that commit and of this tree is also taken
side by side: --rounds rounds, each timing both in fresh subprocesses on the same batch,
and the median of the per-round ratios printed, so load that comes and goes cancels out.

Rates are per CPU-second of this process (time.process_time), i.e. what one core does,
because the machine is shared; wall-clock figures are printed beside them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from weaksup import paths, wordnet  # noqa: E402
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
    ap.add_argument("--posts", type=int, default=20_000, help="5-tag posts in the post case")
    ap.add_argument("--reference", default=None,
                    help="a commit whose resolver is also scored on the post dev set")
    ap.add_argument("--rounds", type=int, default=5,
                    help="with --reference: paired timing rounds of the ambiguous posts")
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

    posts = load_context_dev()
    scored = scored_tags(resolver, posts)
    guesses = {"first sense": [[first_sense(index, t) for t in tags] for tags, _ in posts]}
    if args.reference:
        guesses[f"commit {args.reference[:10]}"] = reference_posts(args.reference, posts)
    guesses["this resolver"] = [[r.synset if r else None for r in resolver.resolve_post(tags)]
                                for tags, _ in posts]
    n = sum(len(s) for s in scored)
    for name, guess in guesses.items():
        ok = sum(guess[p][k] == posts[p][1][k] for p, ks in enumerate(scored) for k in ks)
        print(f"post dev accuracy ({name}): {ok / n:.3f}  ({n} ambiguous tags in {len(posts)} posts, "
              "benchmarks/resolver_context_dev.tsv)")

    # Posts of 5 tags, the caches warm: one pass fills them, the timed pass repeats it.
    rng = random.Random(0)
    ambiguous = sorted({posts[p][0][k] for p, ks in enumerate(scored) for k in ks})
    for name, pool in (("zipfian tags", stream), ("ambiguous tags", ambiguous)):
        batch = [[rng.choice(pool) for _ in range(5)] for _ in range(args.posts)]
        resolve_post = resolver.resolve_post
        for tags in batch:
            resolve_post(tags)
        with Timer() as t:
            for tags in batch:
                resolve_post(tags)
        print(f"posts ({name}): {len(batch) / t.cpu:10,.0f} 5-tag posts/s per core "
              f"({len(batch) / t.wall:,.0f}/s wall; {len(batch):,} posts, caches warm)")
    if args.reference:
        paired_post_rates(args.reference, batch, args.rounds)
    return 0


CONTEXT_DEV = REPO / "benchmarks" / "resolver_context_dev.tsv"


def load_context_dev(path: Path = CONTEXT_DEV) -> list[tuple[list[str], list[str | None]]]:
    """(hashtags, intended synset or None per hashtag) for each post of the dev set."""
    posts = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        tags, golds = (f.split() for f in line.split("\t"))
        if len(tags) != len(golds):
            raise ValueError(f"{path}:{n}: {len(tags)} hashtags but {len(golds)} synsets")
        posts.append((tags, [None if g == "-" else g for g in golds]))
    return posts


def scored_tags(resolver: Resolver, posts) -> list[list[int]]:
    """Per post, the positions of its labelled tags that have two or more depictable senses."""
    out = []
    for tags, golds in posts:
        ks = []
        for k, (tag, gold) in enumerate(zip(tags, golds)):
            res = resolver.resolve(tag)
            if gold is not None and res is not None and len(
                    resolver.senses.candidates(res.lemma, res.lemma)[1]) >= 2:
                ks.append(k)
        out.append(ks)
    return out


def first_sense(index: wordnet.WordNetIndex, tag: str) -> str | None:
    """The baseline: lemmatise the normalised tag and take WordNet's first noun sense."""
    lemmas = index.lemmatize_noun(normalize_hashtag(tag))
    return index.names[index.noun_senses(lemmas[0])[0][0]] if lemmas else None


_REFERENCE_SCRIPT = """
import json, sys
from weaksup.hashtags.resolver import Resolver
r = Resolver()
posts = json.load(sys.stdin)
print(json.dumps([[x.synset if x else None for x in r.resolve_post(tags)] for tags in posts]))
"""

_TIMING_SCRIPT = """
import json, sys, time
from weaksup.hashtags.resolver import Resolver
r = Resolver()
batch = json.load(sys.stdin)
for tags in batch:
    r.resolve_post(tags)
t = time.process_time()
for tags in batch:
    r.resolve_post(tags)
print(len(batch) / (time.process_time() - t))
"""


@contextlib.contextmanager
def exported(commit: str):
    """The `weaksup` package of `commit`, exported to a temporary directory."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "ref.tar"
        subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), commit, "weaksup"],
                       check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(Path(tmp) / "tree", filter="data")
        yield Path(tmp) / "tree"


def run_tree(tree: Path, script: str, stdin: str) -> str:
    """`script`'s stdout, run with `tree`'s package on the path (this tree's data)."""
    env = dict(os.environ, PYTHONPATH=str(tree), WEAKSUP_DATA_DIR=str(paths.data_dir()))
    proc = subprocess.run([sys.executable, "-c", script], env=env, check=True, input=stdin,
                          text=True, capture_output=True, cwd=tempfile.gettempdir())
    return proc.stdout


def reference_posts(commit: str, posts) -> list[list[str | None]]:
    """The synsets an earlier commit's resolver gives each post (run in a subprocess)."""
    with exported(commit) as tree:
        return json.loads(run_tree(tree, _REFERENCE_SCRIPT, json.dumps([tags for tags, _ in posts])))


def paired_post_rates(commit: str, batch: list[list[str]], rounds: int) -> None:
    """Warm `resolve_post` rates of `commit` and of this tree, alternating in subprocesses."""
    stdin = json.dumps(batch)
    reference = f"commit {commit[:10]}"
    rates: dict[str, list[float]] = {reference: [], "this tree": []}
    with exported(commit) as tree:
        for _ in range(rounds):
            for name, path in ((reference, tree), ("this tree", REPO)):
                rates[name].append(float(run_tree(path, _TIMING_SCRIPT, stdin).split()[-1]))
    ratios = [b / a for a, b in zip(rates[reference], rates["this tree"])]
    for name, got in rates.items():
        print(f"posts (ambiguous tags), {name}: median {statistics.median(got):,.0f} 5-tag posts/s "
              f"per core (rounds {', '.join(f'{r:,.0f}' for r in got)})")
    print(f"paired ratio, this tree / commit {commit[:10]}: median {statistics.median(ratios):.2f}x "
          f"(rounds {', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    sys.exit(main())
