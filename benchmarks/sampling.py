"""What each resampling mode shows the network over a run's schedule.

Reads a pretraining run's corpus, vocabulary, held-out records, seed and schedule from its
`config.json`, then replays the real sampler (`weaksup.sampling.Resampler`, the one the
input pipeline reads) for as many images as the run trains on, under natural, square-root
and uniform resampling. Per mode it prints how many distinct posts the schedule shows and
how often each is read, and how the reads spread over labels:

    .venv/bin/python benchmarks/sampling.py runs/demo/pretrain
    .venv/bin/python benchmarks/sampling.py runs/ablations/vocab_aligned/pretrain --modes natural,sqrt

Columns: `distinct` posts read at least once (and their share of the labelled posts the
sampler may draw), reads per distinct post (mean; the 99th percentile and max), the share
of all reads that go to posts read more than twice the natural rate, and the effective
number of labels (exp of the entropy of the label distribution of the reads, each read's
label mass split 1/k over its k labels, as its softmax target is). Nothing is trained;
it runs in seconds.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from weaksup.corpus.shards import Corpus
from weaksup.hashtags.vocabulary import Vocabulary
from weaksup.labels import load_post_labels
from weaksup.sampling import Resampler, training_eligible


def schedule_images(config: dict) -> int:
    """Images the run trains on: total_steps, else ceil(total_examples / batch), times the batch."""
    batch = int(config["input"]["global_batch_size"])
    steps = config.get("total_steps") or math.ceil(int(config["total_examples"]) / batch)
    return int(steps) * batch


def stream(resampler: Resampler, images: int) -> np.ndarray:
    """The record indices the run reads, in order: whole epochs, then a partial one."""
    epochs, rest = divmod(images, len(resampler))
    parts = [resampler.epoch(e) for e in range(epochs)]
    parts.append(resampler.epoch(epochs)[:rest])
    return np.concatenate(parts)


def describe(reads: np.ndarray, offsets: np.ndarray, labels: np.ndarray, num_classes: int,
             labelled: int) -> dict[str, float]:
    """Distinct posts, reads per post and label spread of one stream of record indices."""
    per_post = np.bincount(reads, minlength=len(offsets) - 1)
    seen = per_post[per_post > 0]
    natural_rate = len(reads) / labelled
    k = np.diff(offsets)
    mass = np.zeros(num_classes)
    post_of = np.repeat(np.arange(len(k)), k)
    np.add.at(mass, labels, per_post[post_of] / k[post_of])  # post_of holds only posts with k >= 1
    p = mass[mass > 0] / mass.sum()
    return {
        "distinct": int(len(seen)),
        "distinct_share": len(seen) / labelled,
        "reads_mean": float(seen.mean()),
        "reads_p99": float(np.percentile(seen, 99)),
        "reads_max": int(seen.max()),
        "reads_on_repeated": float(per_post[per_post > 2 * natural_rate].sum() / len(reads)),
        "effective_labels": float(np.exp(-(p * np.log(p)).sum())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pretrain_dir", help="a pretraining run's directory (holds config.json)")
    parser.add_argument("--modes", default="natural,sqrt,uniform", help="comma-separated resampling modes")
    parser.add_argument("--images", type=int, default=0, help="images to replay (default: the run's schedule)")
    args = parser.parse_args()

    config_path = Path(args.pretrain_dir) / "config.json"
    if not config_path.is_file():
        parser.error(f"{config_path}: not found; pass a pretraining run's directory (RUN/pretrain for a demo run)")
    config = json.loads(config_path.read_text())
    corpus = Corpus(config["corpus_dir"])
    vocab = Vocabulary.load(config["vocab_path"])
    post_labels = load_post_labels(vocab, config["vocab_path"], corpus)
    n = len(post_labels)
    holdout = int(config.get("holdout_records") or 0)
    eligible = training_eligible(n, holdout)
    images = args.images or schedule_images(config)
    print(f"{config['corpus_dir']}: {n:,} posts ({holdout:,} held out), {vocab.num_classes:,} labels; "
          f"{images:,} images at seed {config['seed']} (the run's own mode: {config['input']['resampling']})")
    print(f"{'mode':<8} {'distinct posts':>22} {'reads/post':>10} {'p99':>5} {'max':>5} "
          f"{'reads on >2x posts':>18} {'effective labels':>16}")
    for mode in args.modes.split(","):
        sampler = Resampler(post_labels.offsets, post_labels.labels, vocab.num_classes, mode,
                            seed=int(config["seed"]), eligible=eligible)
        labelled = len(sampler.labelled)
        d = describe(stream(sampler, images), post_labels.offsets, post_labels.labels, vocab.num_classes, labelled)
        print(f"{mode:<8} {d['distinct']:>9,} of {labelled:>7,} ({d['distinct_share']:5.1%}) "
              f"{d['reads_mean']:>10.2f} {d['reads_p99']:>5.0f} {d['reads_max']:>5d} "
              f"{d['reads_on_repeated']:>18.1%} {d['effective_labels']:>16.0f}")


if __name__ == "__main__":
    main()
