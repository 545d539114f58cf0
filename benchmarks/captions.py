"""Caption labellers: agreement with gold senses, and captions per second.

    .venv/bin/python benchmarks/captions.py [--dev benchmarks/captions_dev.tsv] [--stream 20000]

Agreement: both labellers (`weaksup.hashtags.text`: the weaksup caption labeller and the
CatLIP-style baseline) label every caption of the hand-labelled dev set, and their synsets
are compared with the gold synsets: micro precision, recall and F1 over (caption, synset)
pairs, and the share of captions labelled exactly right.

Speed: captions per CPU-second of this process (time.process_time; the machine is shared),
after a one-time set-up (building the labeller and labelling one caption, which builds the
resolver's lazily made tables; printed apart), cold (the dev captions: nearly every word
resolved for the first time) and
over a stream of synthetic captions (templates filled with WordNet nouns drawn by a
Zipfian law over their sense-tag counts, so words repeat as they do in real alt-text and
the resolver's caches warm up as they would over a corpus).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from weaksup.hashtags.text import CaptionLabeller, CatlipLabeller  # noqa: E402
from weaksup.wordnet import load_index  # noqa: E402

_TEMPLATES = (
    "A {a} {n} next to a {n} in the {n}",
    "{N}s and {n}s on a {a} {n}",
    "Close up of a {n} with a {n}",
    "The {n}'s {n} near the old {n} at sunset",
    "Two {n}s sitting on a {n} by the {n}",
    "photo of a {a} {n} and her {n}s",
)
_ADJECTIVES = "red small old big wooden white happy fresh little beautiful green dark".split()


def read_dev(path: Path) -> list[tuple[str, set[str]]]:
    """(caption, gold synsets) per non-comment line."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        caption, gold = line.split("\t")
        rows.append((caption, set(gold.split())))
    return rows


def agreement(labeller, rows: list[tuple[str, set[str]]]) -> dict[str, float]:
    """Micro precision / recall / F1 of predicted vs gold synsets, and exact-match share."""
    tp = fp = fn = exact = 0
    for caption, gold in rows:
        got = {label.synset for label in labeller.labels(caption)}
        tp += len(got & gold)
        fp += len(got - gold)
        fn += len(gold - got)
        exact += got == gold
    p = tp / max(tp + fp, 1)
    r = tp / max(tp + fn, 1)
    return {"precision": p, "recall": r, "f1": 2 * p * r / max(p + r, 1e-12),
            "exact": exact / len(rows), "predicted": tp + fp, "gold": tp + fn}


def synthetic_captions(n: int, seed: int = 0) -> list[str]:
    """n captions from templates, nouns drawn Zipf-like by WordNet sense-tag frequency."""
    idx = load_index()
    nouns = [l for l in idx.noun_lemmas() if "_" not in l and l.isalpha() and (idx.pos_count(l, "noun") or 0) > 0]
    nouns.sort(key=lambda l: -(idx.pos_count(l, "noun") or 0))
    nouns = nouns[:8000]
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, len(nouns) + 1, dtype=np.float64)
    p = ranks ** -1.1
    p /= p.sum()
    out = []
    for _ in range(n):
        t = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
        words = iter(nouns[int(i)] for i in rng.choice(len(nouns), 6, p=p))
        adj = iter(_ADJECTIVES[int(i)] for i in rng.integers(0, len(_ADJECTIVES), 3))
        s = t
        while "{n}" in s or "{N}" in s or "{a}" in s:
            s = s.replace("{n}", next(words), 1).replace("{N}", next(words).capitalize(), 1)
            s = s.replace("{a}", next(adj), 1)
        out.append(s)
    return out


def rate(labeller, captions: list[str]) -> tuple[float, float]:
    """(captions per CPU-second, per wall-second)."""
    c0, w0 = time.process_time(), time.perf_counter()
    for c in captions:
        labeller.labels(c)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    return len(captions) / max(cpu, 1e-9), len(captions) / max(wall, 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dev", default=str(REPO / "benchmarks" / "captions_dev.tsv"))
    ap.add_argument("--stream", type=int, default=20000, help="synthetic captions for the speed figure")
    args = ap.parse_args()
    rows = read_dev(Path(args.dev))
    load_index()
    print(f"dev set: {len(rows)} captions, {sum(len(g) for _, g in rows)} gold synsets")
    print(f"{'labeller':<10} {'precision':>9} {'recall':>7} {'F1':>6} {'exact':>6} {'labels':>7}")
    for make in (CaptionLabeller, CatlipLabeller):
        lab = make()
        a = agreement(lab, rows)
        print(f"{lab.name:<10} {a['precision']:>9.3f} {a['recall']:>7.3f} {a['f1']:>6.3f} "
              f"{a['exact']:>6.3f} {a['predicted']:>7d}")
    captions = [c for c, _ in rows]
    stream = synthetic_captions(args.stream)
    for make in (CaptionLabeller, CatlipLabeller):
        c0 = time.process_time()
        lab = make()
        lab.labels("a cat and a crane near a bird")
        setup = time.process_time() - c0
        cold_cpu, cold_wall = rate(lab, captions)
        cpu, wall = rate(lab, stream)
        print(f"{lab.name:<10} set-up {setup:.2f} CPU-s; cold {cold_cpu:>8,.0f} captions/CPU-s ({cold_wall:,.0f}/wall-s); "
              f"stream of {len(stream):,}: {cpu:>8,.0f} captions/CPU-s ({wall:,.0f}/wall-s)")
        if isinstance(lab, CaptionLabeller):
            # The share of the phrase finder alone, before the resolver's sense choice.
            c0 = time.process_time()
            for c in stream:
                lab.candidates(c)
            print(f"{'':<10} noun-phrase candidates alone: "
                  f"{len(stream) / max(time.process_time() - c0, 1e-9):,.0f} captions/CPU-s")


if __name__ == "__main__":
    main()
