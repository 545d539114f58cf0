"""Hashtag prediction: the top-k labels of your own pictures from a run's checkpoint.

    python -m weaksup predict --workdir RUN [--step N] [--top-k 5] [--json] [--prior-correction]
                              IMAGE_OR_FOLDER [...]

Each picture gets its k most probable labels of the run's label space: the WordNet synset
(id and name), its lemma and the hashtag spelling users wrote most for it, and the
softmax probability. Folders are searched recursively; every file goes through the
corpus's image check (`corpus.images.check_image`: any format Pillow reads, CMYK, 16-bit,
palette and alpha normalised, bombs and truncated files refused) and the evaluation crop
at the run's resolution. Unreadable files are reported on stderr, skipped and counted.
Batches are split over the device mesh.

`--prior-correction` subtracts the log of the label prior (the vocabulary's hashtag
frequencies) from the logits before the softmax: hashtag frequencies follow Zipf's law,
and the head learned the popular labels' base rates; corrected, it ranks labels as if
all were equally common (the logit-adjustment form of calibrating towards a uniform prior).

Output: a table, or with `--json` one JSON object per picture:
{"file", "labels": [{"rank", "wnid", "synset", "lemma", "hashtag", "probability"}]}.
Exit status: 0 when at least one picture was labelled, 2 for a bad run folder or when
no picture could be read.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from scipy.special import softmax

from weaksup import augment, console, sharding, train_lib
from weaksup.checkpoint import load_pretrained
from weaksup.corpus.images import ImageError, check_image
from weaksup.errors import EXIT_OK, EXIT_USAGE, UsageError
from weaksup.hashtags.vocabulary import Vocabulary

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Label:
    """One predicted label of a picture."""

    rank: int
    wnid: str
    synset: str
    lemma: str
    hashtag: str
    probability: float


def image_files(paths: Sequence[str | os.PathLike]) -> Iterator[Path]:
    """The files named, and every file below the folders named (sorted); missing paths raise."""
    for p in map(Path, paths):
        if p.is_dir():
            yield from sorted(f for f in p.rglob("*") if f.is_file())
        elif p.is_file():
            yield p
        else:
            raise UsageError(f"{p}: no such file or folder")


def label_names(vocab: Vocabulary) -> list[tuple[str, str, str, str]]:
    """(wnid, synset, lemma, most frequent hashtag) for every label of the vocabulary."""
    out = []
    for wnid, name, tags in zip(vocab.wnids, vocab.names, vocab.hashtags):
        lemma = name.split(".")[0].replace("_", " ")
        hashtag = max(tags.items(), key=lambda kv: (kv[1], kv[0]))[0] if tags else lemma
        out.append((wnid, name, lemma, "#" + hashtag))
    return out


class Predictor:
    """A run's model on the device mesh: pictures (encoded bytes) -> top-k labels."""

    def __init__(self, workdir: str | os.PathLike, step: int | None = None, prior_correction: bool = False):
        self.mesh = sharding.make_mesh({"data": -1})
        config, self.vocab, self.model, self.variables = load_pretrained(workdir, step=step, mesh=self.mesh)
        self.image_size = int(config.input.image_size)
        self.names = label_names(self.vocab)
        self.predict = train_lib.make_predict_fn(self.model, self.mesh)
        freq = np.asarray(self.vocab.frequencies, np.float64)
        self.log_prior = np.log(freq / freq.sum()).astype(np.float32) if prior_correction else None

    def crop(self, data: bytes) -> np.ndarray:
        """The evaluation crop of an encoded picture; ImageError / ValueError when unreadable."""
        return augment.eval_crop(check_image(data).data, self.image_size)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(N, C) label probabilities of uint8 pictures (N, S, S, 3), padded to the mesh."""
        logits = train_lib.predict_on_host(self.predict, self.variables, images, self.mesh)
        if self.log_prior is not None:
            logits = logits - self.log_prior
        return softmax(logits, axis=1)

    def top_k(self, probabilities: np.ndarray, k: int) -> list[list[Label]]:
        """The k most probable labels of each row."""
        k = min(k, probabilities.shape[1])
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        return [[Label(r + 1, *self.names[c], float(row[c])) for r, c in enumerate(idx)]
                for row, idx in zip(probabilities, order)]


def _print_table(rows: list[tuple[Path, list[Label]]]) -> None:
    for path, labels in rows:
        print(path)
        for lab in labels:
            print(f"  {lab.rank:>2}. {lab.probability:7.2%}  {lab.lemma:<28} {lab.hashtag:<24} {lab.synset} ({lab.wnid})")


def main(argv: list[str]) -> int:
    """`python -m weaksup predict` (see the module docstring)."""
    console.ensure_setup()  # status lines are log records: shown unless -q
    parser = argparse.ArgumentParser(prog="python -m weaksup predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="pictures and folders (searched recursively)")
    parser.add_argument("--workdir", required=True, help="the run folder (its checkpoints/)")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64, help="pictures per device batch round")
    parser.add_argument("--json", action="store_true", help="one JSON object per picture")
    parser.add_argument("--prior-correction", action="store_true", help="rank as if all labels were equally common")
    args = parser.parse_args(argv)
    if args.top_k < 1 or args.batch < 1:
        parser.error("--top-k and --batch must be >= 1")
    try:
        files = list(image_files(args.paths))
        predictor = Predictor(args.workdir, args.step, args.prior_correction)
    except UsageError as e:
        print(f"predict: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    skipped = labelled = 0
    for start in range(0, len(files), args.batch):
        chunk, images = [], []
        for path in files[start : start + args.batch]:
            try:
                images.append(predictor.crop(path.read_bytes()))
                chunk.append(path)
            except (ImageError, ValueError, OSError) as e:
                skipped += 1
                log.warning(f"predict: skipping {path}: {e}")
        if not chunk:
            continue
        rows = list(zip(chunk, predictor.top_k(predictor.probabilities(np.stack(images)), args.top_k)))
        labelled += len(rows)
        if args.json:
            for path, labels in rows:
                print(json.dumps({"file": str(path), "labels": [dataclasses.asdict(x) for x in labels]}))
        else:
            _print_table(rows)
    print(f"predict: {labelled} picture(s) labelled, {skipped} unreadable file(s) skipped", file=sys.stderr)
    if not labelled:
        print("predict: error: no picture could be read", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK
