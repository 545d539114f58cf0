"""`python -m weaksup corpus build|balance|stats|verify ...`

  corpus build --source NAME [--input PATH] --output DIR [--option KEY=VALUE ...]
               [--labels hashtags|caption|both] [--labeller weaksup|catlip]
               [--runner local|direct|DataflowRunner|FlinkRunner|SparkRunner] [--workers N]
               [--num-shards N] [--dedup-against SPEC ...] [--overwrite] [-- BEAM_ARGS...]
  corpus balance --corpus DIR --output DIR2 --t T [--seed S] [--vocab FILE] [--num-shards N]
               [--overwrite]
  corpus stats DIR [--json] [--verify] [--top N]
  corpus verify DIR
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

import numpy as np

from weaksup import console
from weaksup.corpus import pipeline
from weaksup.corpus.balance import balance_corpus
from weaksup.corpus.dedup import reference_hashes
from weaksup.corpus.images import DEFAULT_MAX_PIXELS
from weaksup.corpus.shards import Corpus, CorpusError
from weaksup.corpus.sources.base import SourceError
from weaksup.errors import EXIT_IO_ERROR, StorageFailed, UsageError
from weaksup.hashtags.text import LABEL_SOURCES, LABELLERS

log = logging.getLogger(__name__)

_BUILD_EPILOG = """\
sources: instaloader (download folders), webdataset (img2dataset tars + parquet),
jsonl / csv (manifests with image paths), yfcc (YFCC100M metadata + image folder),
emojigram (generated; no --input). Source options: --option KEY=VALUE (VALUE is parsed as
a JSON literal when it parses, else kept as a string), e.g. --option group=post for
instaloader, --option nouns=true for webdataset, --option images=DIR for yfcc.

labels (webdataset, yfcc, jsonl, csv): --labels hashtags (default: the caption's hashtags, YFCC's user
and machine tags), caption (the caption's noun phrases resolved to depictable WordNet
senses: alt-text shards become labelled posts) or both; --labeller weaksup (default) or
catlip (CatLIP's first-sense baseline). See weaksup/hashtags/text.py.

runners: `local` (default) runs the pipeline's functions in a process pool; `direct` is
Beam's DirectRunner; any other name (DataflowRunner, FlinkRunner, SparkRunner, ...) runs the
same Beam pipeline there. Arguments after `--` go to Beam's PipelineOptions, e.g.
  -- --project=P --region=R --temp_location=gs://B/tmp        (Dataflow)
  -- --flink_master=HOST:8081 --environment_type=DOCKER        (Flink)
See weaksup/corpus/pipeline.py for the layout on a cluster.

near-duplicate filter: --dedup-against tfds:NAME[:SPLIT+SPLIT] or a folder of images
(repeatable); posts within --dedup-threshold of 64 pHash bits of any, confirmed within
--dedup-fine-threshold of 256 fine-hash bits, are skipped as near_duplicate.
"""


def parse_option(text: str) -> tuple[str, Any]:
    """KEY=VALUE -> (key, JSON literal or string)."""
    key, eq, value = text.partition("=")
    if not eq or not key:
        raise argparse.ArgumentTypeError(f"--option {text!r}: expected KEY=VALUE")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def _build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m weaksup corpus build",
        description="Build an ArrayRecord hashtag corpus from a source.",
        epilog=_BUILD_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", required=True, help="source name (see below)")
    ap.add_argument("--input", help="input path (file or folder) of the source")
    ap.add_argument("--output", required=True, help="corpus directory to write")
    ap.add_argument("--option", action="append", default=[], type=parse_option, metavar="KEY=VALUE",
                    help="source option (repeatable)")
    ap.add_argument("--labels", choices=LABEL_SOURCES,
                    help="label source (option labels; webdataset, yfcc, jsonl, csv): default hashtags")
    ap.add_argument("--labeller", choices=LABELLERS,
                    help="caption labeller (option labeller): default weaksup")
    ap.add_argument("--num-posts", type=int, help="emojigram: number of posts (option num_posts)")
    ap.add_argument("--seed", type=int, help="emojigram: generator seed (option seed)")
    ap.add_argument("--num-shards", type=int, default=16, help="number of output shards (default 16)")
    ap.add_argument("--runner", default="local", help="local (default), direct, or a Beam runner name")
    ap.add_argument("--workers", type=int, default=None, help="local/direct worker processes (default: CPUs)")
    ap.add_argument("--max-pixels", type=int, default=None, help="decompression-bomb limit (pixels)")
    ap.add_argument("--dedup-against", action="append", default=[], metavar="SPEC",
                    help="evaluation images: tfds:NAME[:SPLIT+SPLIT] or a folder (repeatable)")
    ap.add_argument("--dedup-threshold", type=int, default=10, help="Hamming threshold (default 10 of 64 bits)")
    ap.add_argument("--dedup-fine-threshold", type=int, default=56,
                    help="confirming threshold on the 256-bit hash (default 56)")
    ap.add_argument("--dedup-image-key", default="image", help="TFDS image feature key (default image)")
    ap.add_argument("--dedup-data-dir", default=None, help="TFDS data_dir (default: the project's)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing complete corpus")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap


def build_main(argv: list[str]) -> int:
    """`corpus build`: parses flags and runs the pipeline."""
    console.ensure_setup()  # status lines are log records: shown unless -q
    if "--" in argv:
        cut = argv.index("--")
        argv, beam_args = argv[:cut], argv[cut + 1:]
    else:
        beam_args = []
    args = _build_parser().parse_args(argv)
    options = dict(args.option)
    if args.num_posts is not None:
        options["num_posts"] = args.num_posts
    if args.seed is not None:
        options["seed"] = args.seed
    if args.labels is not None:
        options["labels"] = args.labels
    if args.labeller is not None:
        options["labeller"] = args.labeller
    if args.num_shards < 1:
        print("corpus build: --num-shards must be >= 1", file=sys.stderr)
        return 2
    hashes = None
    if args.dedup_against:
        parts = []
        for spec in args.dedup_against:
            try:
                h = reference_hashes(spec, image_key=args.dedup_image_key, data_dir=args.dedup_data_dir)
            except Exception as e:
                print(f"corpus build: --dedup-against {spec}: {type(e).__name__}: {e}", file=sys.stderr)
                return 2
            log.info(f"dedup: {len(h)} reference hashes (with crop variants) from {spec}")
            parts.append(h)
        hashes = np.concatenate(parts)
    config = pipeline.BuildConfig(
        source=args.source, input=args.input, options=options, num_shards=args.num_shards,
        max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS, dedup_hashes=hashes,
        dedup_threshold=args.dedup_threshold, dedup_fine_threshold=args.dedup_fine_threshold, dedup_specs=tuple(args.dedup_against))
    if args.runner not in ("local", "direct"):
        from apache_beam.runners.runner import create_runner  # Beam only for the runners that need it

        try:
            create_runner(args.runner)  # an unknown runner fails here, before any input is read
        except (ValueError, ImportError) as e:
            print(f"corpus build: --runner {args.runner}: {e}", file=sys.stderr)
            return 2
    try:
        config.make_source()  # fail fast on a bad source, input or option
        manifest = pipeline.build(config, args.output, runner=args.runner, workers=args.workers,
                                  pipeline_args=beam_args, overwrite=args.overwrite,
                                  progress=not args.no_progress)
    except (SourceError, CorpusError) as e:
        print(f"corpus build: {e}", file=sys.stderr)
        return 2
    except StorageFailed as e:  # a full disk: the output folder is left as it was
        print(f"corpus build: {e}", file=sys.stderr)
        return EXIT_IO_ERROR
    if manifest is not None:
        summary = {"output": args.output, "records": manifest["records"], "shards": len(manifest["shards"]),
                   "skipped": manifest["skipped"], "normalised": manifest["normalised"],
                   "distinct_hashtags": manifest["hashtags"]["distinct"]}
        print(json.dumps(summary))
    return 0


def balance_main(argv: list[str]) -> int:
    """`corpus balance`: writes a MetaCLIP-balanced subset as a corpus of its own."""
    ap = argparse.ArgumentParser(
        prog="python -m weaksup corpus balance",
        description="Keep each post with probability max over its labels of min(1, t / count) "
                    "(MetaCLIP balancing; weaksup/corpus/balance.py) and write the kept posts.")
    ap.add_argument("--corpus", required=True, help="corpus directory to balance")
    ap.add_argument("--output", required=True, help="corpus directory to write")
    ap.add_argument("--t", type=float, required=True, help="threshold: posts kept per label at most ~t")
    ap.add_argument("--seed", type=int, default=0, help="seed of the keep draws (default 0)")
    ap.add_argument("--vocab", help="count labels under this vocabulary (default: normalised hashtags)")
    ap.add_argument("--num-shards", type=int, help="output shards (default: as the input)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing complete corpus")
    args = ap.parse_args(argv)
    try:
        manifest = balance_corpus(args.corpus, args.output, t=args.t, seed=args.seed,
                                  vocab_path=args.vocab, num_shards=args.num_shards,
                                  overwrite=args.overwrite)
    except UsageError as e:  # a bad corpus, output folder or vocabulary
        print(f"corpus balance: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"output": args.output, "records": manifest["records"],
                      "shards": len(manifest["shards"]), **manifest["build"]["balance"]}))
    return 0


def stats_main(argv: list[str], verify_only: bool = False) -> int:
    """`corpus stats DIR [--json] [--verify]` and `corpus verify DIR`."""
    ap = argparse.ArgumentParser(prog=f"python -m weaksup corpus {'verify' if verify_only else 'stats'}")
    ap.add_argument("dir", help="corpus directory")
    if not verify_only:
        ap.add_argument("--json", action="store_true", help="print one JSON object")
        ap.add_argument("--verify", action="store_true", help="also check checksums and decode every record")
        ap.add_argument("--top", type=int, default=20, help="number of top hashtags (default 20)")
    args = ap.parse_args(argv)
    try:
        with Corpus(args.dir) as corpus:
            if verify_only or args.verify:
                result = corpus.verify()
                if verify_only:
                    print(json.dumps(result))
                    return 0
            stats = corpus.stats(top=args.top)
            if args.verify:
                stats["verified"] = True
    except CorpusError as e:
        print(f"corpus: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(stats, ensure_ascii=False))
        return 0
    print(f"{stats['path']}: {stats['records']} records in {stats['shards']} shards, "
          f"{stats['bytes'] / 1e6:.1f} MB")
    print(f"skipped: {json.dumps(stats['skipped'])}")
    print(f"normalised: {json.dumps(stats['normalised'])}")
    print(f"hashtags: {stats['distinct_hashtags']} distinct, {stats['hashtag_occurrences']} uses; top:")
    for tag, n in stats["top_hashtags"]:
        print(f"  {n:>8}  #{tag}")
    return 0


def main(argv: list[str]) -> int:
    """Dispatches `corpus build|stats|verify`."""
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2  # no subcommand is a usage error, as for every command
    cmd, rest = argv[0], argv[1:]
    if cmd == "build":
        return build_main(rest)
    if cmd == "balance":
        return balance_main(rest)
    if cmd == "stats":
        return stats_main(rest)
    if cmd == "verify":
        return stats_main(rest, verify_only=True)
    print(f"corpus: unknown subcommand {cmd!r}\n{__doc__.strip()}", file=sys.stderr)
    return 2
