"""`python -m weaksup vocab build | show`: label-space vocabularies from a corpus."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from weaksup import console, validation
from weaksup.corpus.shards import CorpusError
from weaksup.errors import EXIT_USAGE, UsageError
from weaksup.hashtags.vocabulary import MODES, Vocabulary, VocabularyError
from weaksup.labels import build_from_corpus

log = logging.getLogger(__name__)


def _coverage_lines(vocab: Vocabulary) -> list[str]:
    c = vocab.coverage
    return [
        f"classes: {vocab.num_classes}  (mode {vocab.build.get('mode')}, "
        f"prefer_specific={vocab.prefer_specific})",
        f"posts with >= 1 label: {c.get('posts_with_label')}/{c.get('posts')} "
        f"= {100 * c.get('post_share', 0):.2f}%",
        f"hashtag occurrences mapped: {c.get('occurrences_mapped')}/{c.get('hashtag_occurrences')} "
        f"= {100 * c.get('occurrence_share', 0):.2f}%",
        f"mean labels per labelled post: {c.get('mean_labels_per_labelled_post', 0):.3f}",
    ]


def main(argv: list[str]) -> int:
    console.ensure_setup()  # status lines are log records: shown unless -q
    parser = argparse.ArgumentParser(prog="python -m weaksup vocab", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build a vocabulary JSON and print its coverage")
    b.add_argument("--corpus", required=True, help="corpus directory (shards + manifest.json)")
    b.add_argument("--mode", required=True, choices=MODES)
    b.add_argument("--output", required=True, help="vocabulary JSON to write")
    b.add_argument("--top-k", "--k", dest="top_k", type=validation.option_type("vocab.top_k"), default=None,
                   help="keep the K most frequent labels (required by mode topk)")
    b.add_argument("--min-count", type=validation.option_type("vocab.min_count"), default=None,
                   help="keep labels seen at least N times (required by mode min_count)")
    b.add_argument("--under", action="append", default=[],
                   help="keep synsets below this one (name or wnid); repeatable")
    b.add_argument("--lexnames", action="append", default=[],
                   help="keep synsets of this lexicographer file, e.g. noun.animal; repeatable")
    b.add_argument("--within", action="append", default=[],
                   help="keep only this synset (name or wnid), a target-aligned label space; repeatable")
    b.add_argument("--within-file", default=None,
                   help="keep only the synsets listed in this file (one name or wnid per line)")
    b.add_argument("--prefer-specific", action="store_true",
                   help="within a post, drop a label when one of its hyponyms is present")
    s = sub.add_parser("show", help="print a vocabulary's settings, coverage and top labels")
    s.add_argument("path")
    s.add_argument("--top", type=int, default=20)
    args = parser.parse_args(argv)
    if args.cmd == "build":
        try:
            validation.writable_file(args.output, "--output")  # before reading the corpus
        except UsageError as e:
            print(f"vocab: {e}", file=sys.stderr)
            return EXIT_USAGE

    try:
        if args.cmd == "build":
            within = list(args.within)
            if args.within_file:
                try:
                    lines = Path(args.within_file).read_text(encoding="utf-8").splitlines()
                except (OSError, UnicodeDecodeError) as e:
                    raise VocabularyError(f"--within-file {args.within_file}: {e}") from None
                within += [ln.strip() for ln in lines if ln.strip()]
            vocab = build_from_corpus(
                args.corpus, args.output, mode=args.mode, top_k=args.top_k,
                min_count=args.min_count, under=args.under, lexnames=args.lexnames,
                prefer_specific=args.prefer_specific, within=within,
            )
            log.info(f"vocab: wrote {args.output}")
        else:
            vocab = Vocabulary.load(args.path)
            print(json.dumps(vocab.build, indent=1))
            for i in range(min(args.top, vocab.num_classes)):
                tags = ", ".join(list(vocab.hashtags[i])[:5])
                print(f"{i:6d} {vocab.wnids[i]:<12} {vocab.names[i]:<28} {vocab.frequencies[i]:>9}  {tags}")
    except CorpusError as e:  # a missing, incomplete or corrupt corpus, named by file: bad input
        print(f"vocab: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (VocabularyError, RuntimeError) as e:  # WordNetError is a RuntimeError
        print(f"vocab: {e}", file=sys.stderr)
        return 1
    for line in _coverage_lines(vocab):
        print(line)
    return 0
