"""The EmojiGram experiment end to end: `make demo` (= `python -m weaksup demo`).

Stages, each skipped when its output is already complete, so an interrupted demo
resumes where it stopped:

  1. target      the held-out-artist evaluation set, a TFDS dataset (array_record)
  2. corpus      EmojiGram posts by the pretraining artists, near-duplicates of target
                 images removed -> ArrayRecord shards + manifest      (DATA_ROOT/...)
  3. vocabulary  hashtags -> WordNet synsets -> label space           (DATA_ROOT/...)
                 (optionally a larger corpus's, one label space across corpus sizes)
  4. pretrain    the jit-sharded loop with Orbax checkpoints          (WORKDIR/pretrain)
  5. transfer    linear probe, few-shot ridge, fine-tuning; from the pretrained trunk
                 and from random initialisation                       (WORKDIR/transfer)
  6. results     WORKDIR/results.json and a printed table

Corpora and vocabularies live under DATA_ROOT (default: runs/emojigram-data) keyed by
their settings, so the ablation runs (configs/ablation_*.py) share them.

results.json holds: "summary" (the headline numbers: linear-probe, fine-tune and zero-shot top-1
for pretrained and random-init trunks and their differences), "transfer" (every
evaluator's metrics per init), "pretraining" (final training metrics, steps, time),
"data" (corpus records and skips, vocabulary size and coverage, target name and
classes), "stages" (seconds per stage) and "config".
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ml_collections

from weaksup import atomic, paths, runner, train
from weaksup import config as config_lib
from weaksup.corpus import pipeline, shards
from weaksup.corpus.dedup import reference_hashes
from weaksup.datasets import emojigram_target
from weaksup.errors import EXIT_OK, EXIT_PREEMPTED, RunFailed
from weaksup.evaluators import cli as evaluate_cli
from weaksup.hashtags.vocabulary import Vocabulary
from weaksup.labels import build_from_corpus

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO / "configs" / "emojigram_demo.py"
TRANSFER_CONFIG = REPO / "configs" / "emojigram_transfer.py"


class DemoError(RunFailed):
    """A demo stage that cannot run as configured."""


def _stage(name: str, t0: float) -> None:
    log.info(f"\n=== demo: {name}  (elapsed {(time.time() - t0) / 60:.1f} min)")


def build_target(data: Any, tfds_dir: Path) -> tuple[str, list[str], list[str]]:
    """Builds (or finds) the held-out-artist target; returns (tfds name, class wnids, concept ids)."""
    train, val, test = data.target_per_class
    builder = emojigram_target.build_target(
        data_dir=tfds_dir,
        heldout_artist=data.heldout_artist,
        image_size=int(data.stored_size),
        train_per_class=int(train),
        validation_per_class=int(val),
        test_per_class=int(test),
        seed=int(data.seed),
        max_classes=int(data.target_max_classes),
    )
    name = f"emojigram_target/{builder.builder_config.name}"
    classes = builder.info.metadata["classes"]
    return name, [c["wnid"] for c in classes], [i for c in classes for i in c["concepts"]]


def corpus_dir_for(data: Any, data_root: Path) -> Path:
    """The corpus directory named by the settings that determine its content."""
    artists = str(data.artists).replace(",", "+")
    closed = f"-closed{int(data.target_max_classes) or 'all'}" if data.corpus_within_target else ""
    clean = "-clean" if data.clean_labels else ""
    emoji = "" if int(data.max_emoji_per_post) == 3 else f"-max{int(data.max_emoji_per_post)}emoji"
    return data_root / (
        f"corpus-{artists}-{int(data.num_posts)}-s{int(data.seed)}-{int(data.stored_size)}px"
        f"-dedup-{data.heldout_artist}{closed}{clean}{emoji}"
    )


def build_corpus(data: Any, output: Path, target_name: str, tfds_dir: Path,
                 target_concepts: Sequence[str] = ()) -> dict[str, Any]:
    """Builds the EmojiGram corpus (deduplicated against the target) unless it is complete.

    With `data.corpus_within_target` the posts show only `target_concepts` (a closed world).
    """
    if (output / shards.MANIFEST).exists():
        log.info(f"corpus: {output} is complete; reusing it")
        return shards.Corpus(output).manifest
    spec = f"tfds:{target_name}"
    hashes = reference_hashes(spec, data_dir=str(tfds_dir))
    log.info(f"corpus: {len(hashes)} reference pHashes from {spec}")
    config = pipeline.BuildConfig(
        source="emojigram",
        options={
            "num_posts": int(data.num_posts),
            "seed": int(data.seed),
            "artists": str(data.artists),
            "image_size": int(data.stored_size),
            "concept_ids": ",".join(target_concepts) if data.corpus_within_target else "",
            "clean_labels": bool(data.clean_labels),
            "max_emoji_per_post": int(data.max_emoji_per_post),
        },
        num_shards=int(data.num_shards),
        dedup_hashes=hashes,
        dedup_threshold=int(data.dedup_threshold),
        dedup_specs=(spec,),
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    manifest = pipeline.build(config, str(output), runner="local", progress=True)
    if manifest is None:
        raise DemoError(f"corpus build into {output} returned no manifest")
    return manifest


def build_vocabulary(data: Any, corpus_dir: Path, target_name: str, target_wnids: list[str]) -> Path:
    """Builds the label space for the corpus unless it exists; returns its path.

    With `data.vocab_within_target` only the target's synsets are kept: the paper's
    target-aligned vocabulary (its ImageNet results used the ImageNet-aligned hashtags).
    """
    mode = str(data.vocab_mode)
    tag = {"topk": f"top{int(data.top_k)}", "min_count": f"min{int(data.min_count)}"}.get(mode, mode)
    if mode in ("nouns", "raw", "imagenet1k"):
        tag = f"{mode}-min{int(data.min_count)}"
    if data.prefer_specific:
        tag += "-specific"
    within = list(target_wnids) if data.vocab_within_target else []
    if within:
        tag += "-within-" + target_name.replace("/", "-")
    path = corpus_dir / f"vocab-{tag}.json"
    if path.exists():
        log.info(f"vocabulary: {path} exists; reusing it")
        return path
    kwargs: dict[str, Any] = {"mode": mode, "prefer_specific": bool(data.prefer_specific), "within": within}
    if mode == "topk":
        kwargs["top_k"] = int(data.top_k)
    else:
        kwargs["min_count"] = int(data.min_count)
    vocab = build_from_corpus(str(corpus_dir), str(path), **kwargs)
    log.info(f"vocabulary: {vocab.num_classes} labels; coverage {json.dumps(vocab.coverage)}")
    return path


def vocab_corpus_for(data: Any, corpus_dir: Path, data_root: Path, target_name: str, tfds_dir: Path,
                     target_concepts: Sequence[str] = ()) -> Path:
    """The corpus whose vocabulary labels this run: its own, or the `data.vocab_num_posts` one.

    With `data.vocab_num_posts` set, the corpus of that many posts (same seed and settings,
    built if missing) names the labels, so runs at several corpus sizes share one label
    space: the paper's Fig. 3 design.
    """
    if not int(data.vocab_num_posts) or int(data.vocab_num_posts) == int(data.num_posts):
        return corpus_dir
    whole = ml_collections.ConfigDict(data.to_dict())
    whole.num_posts = int(data.vocab_num_posts)
    path = corpus_dir_for(whole, data_root)
    build_corpus(whole, path, target_name, tfds_dir, target_concepts)
    return path


def transfer_config(config: Any, pretrain_dir: Path, target_name: str, tfds_dir: Path) -> Any:
    """The evaluation config: the transfer config file with the demo's settings."""
    t = config.transfer
    ecfg = config_lib.load_config(
        f"{TRANSFER_CONFIG}:pretrained={pretrain_dir},dataset={target_name},data_dir={tfds_dir},"
        f"size={int(config.input.image_size)},batch={int(t.batch_size)},ft_steps={int(t.finetune_steps)}",
        lock=False,
    )
    ecfg.seed = int(config.seed)
    ecfg.evals.linear.l2_grid = tuple(t.l2_grid)
    ecfg.evals.fewshot.shots = tuple(t.shots)
    ecfg.evals.fewshot.seeds = tuple(t.seeds)
    ecfg.evals.finetune.base_lr = float(t.finetune_lr)
    # Fine-tuning crops like pretraining: an emoji fills the target image, and Inception's
    # 8% crops of a 32 px picture would mostly show a fragment of it.
    ecfg.evals.finetune.crop_min_area = float(config.input.crop_min_area)
    # Zero-shot through WordNet, calibrated on the corpus posts pretraining held out.
    ecfg.evals.zeroshot = {"type": "zeroshot", "corpus_dir": str(config.corpus_dir) if config.holdout_records else "",
                           "records": int(config.holdout_records)}
    unknown = set(t.protocols) - set(ecfg.evals)
    if unknown:
        raise DemoError(f"transfer.protocols names unknown protocols {sorted(unknown)}; known: {sorted(ecfg.evals)}")
    for name in list(ecfg.evals):
        if name not in t.protocols:
            del ecfg.evals[name]
    return ecfg


def summarise(transfer: dict[str, dict[str, dict[str, float]]]) -> dict[str, float]:
    """The headline numbers: test top-1 per protocol and init, and pretrained - random."""
    out: dict[str, float] = {}
    for protocol, metric in (("linear", "test_top1"), ("finetune", "test_top1"), ("zeroshot", "top1")):
        for init in ("pretrained", "random"):
            metrics = transfer.get(init, {}).get(protocol, {})
            if metric in metrics:
                out[f"{protocol}_top1_{init}"] = float(metrics[metric])
        if f"{protocol}_top1_pretrained" in out and f"{protocol}_top1_random" in out:
            out[f"{protocol}_top1_gain"] = out[f"{protocol}_top1_pretrained"] - out[f"{protocol}_top1_random"]
    return out


def results_table(transfer: dict[str, dict[str, dict[str, float]]]) -> str:
    """A plain-text table: one row per evaluator metric, one column per init."""
    inits = list(transfer)
    rows = []
    for init in inits:
        for ev, metrics in transfer[init].items():
            for k in metrics:
                if k != "seconds" and (ev, k) not in rows:
                    rows.append((ev, k))
    width = max([len(f"{e} {k}") for e, k in rows] + [10])
    lines = [f"{'metric':<{width}}  " + "  ".join(f"{i:>10}" for i in inits)]
    for ev, k in rows:
        vals = []
        for init in inits:
            v = transfer[init].get(ev, {}).get(k)
            vals.append(f"{v:>10.4f}" if isinstance(v, (int, float)) else f"{'-':>10}")
        lines.append(f"{f'{ev} {k}':<{width}}  " + "  ".join(vals))
    return "\n".join(lines)


def run(config: Any, workdir: Path, data_root: Path, tfds_dir: Path) -> dict[str, Any] | None:
    """Runs every stage; returns (and writes) the results document, or None when a signal stopped it."""
    t0 = time.time()
    stages: dict[str, float] = {}
    workdir.mkdir(parents=True, exist_ok=True)
    data = config.data

    _stage("1/5 held-out-artist target", t0)
    t = time.time()
    target_name, target_wnids, target_concepts = build_target(data, tfds_dir)
    target_classes = len(target_wnids)
    stages["target"] = time.time() - t
    log.info(f"target: {target_name} with {target_classes} WordNet classes")

    _stage("2/5 EmojiGram corpus", t0)
    t = time.time()
    corpus_dir = corpus_dir_for(data, data_root)
    manifest = build_corpus(data, corpus_dir, target_name, tfds_dir, target_concepts)
    stages["corpus"] = time.time() - t

    _stage("3/5 WordNet vocabulary", t0)
    t = time.time()
    vocab_corpus_dir = vocab_corpus_for(data, corpus_dir, data_root, target_name, tfds_dir, target_concepts)
    vocab_path = build_vocabulary(data, vocab_corpus_dir, target_name, target_wnids)
    vocab = Vocabulary.load(vocab_path)
    # A label space from another corpus is deliberate here, not a stale vocabulary.
    config.input.allow_corpus_mismatch = vocab_corpus_dir != corpus_dir
    stages["vocabulary"] = time.time() - t

    _stage("4/5 pretraining", t0)
    t = time.time()
    config.corpus_dir = str(corpus_dir)
    config.vocab_path = str(vocab_path)
    pretrain_dir = workdir / "pretrain"
    final = train.train_and_evaluate(config, pretrain_dir)
    if final.get("stopped"):
        log.info(f"demo: pretraining stopped by {final['stopped']} after saving; run the demo again to resume")
        return None
    stages["pretrain"] = time.time() - t

    _stage("5/5 transfer to the held-out artist", t0)
    t = time.time()
    transfer = evaluate_cli.evaluate(transfer_config(config, pretrain_dir, target_name, tfds_dir),
                                     workdir / "transfer")
    stages["transfer"] = time.time() - t

    corpus = shards.Corpus(corpus_dir)
    results = {
        "summary": summarise(transfer),
        "transfer": transfer,
        "pretraining": {k: v for k, v in final.items()},
        "data": {
            "corpus_dir": str(corpus_dir),
            "corpus_records": len(corpus),
            "corpus_skipped": manifest.get("skipped", {}),
            "vocab_path": str(vocab_path),
            "vocab_corpus_dir": str(vocab_corpus_dir),
            "vocab_mode": str(data.vocab_mode),
            "vocab_within_target": bool(data.vocab_within_target),
            "corpus_within_target": bool(data.corpus_within_target),
            "clean_labels": bool(data.clean_labels),
            "max_emoji_per_post": int(data.max_emoji_per_post),
            "vocab_classes": vocab.num_classes,
            "vocab_coverage": vocab.coverage,
            "target": target_name,
            "target_classes": target_classes,
        },
        "stages": {k: round(v, 1) for k, v in stages.items()},
        "minutes": round((time.time() - t0) / 60, 2),
        "config": json.loads(config.to_json_best_effort()),
    }
    atomic.write_json(workdir / "results.json", results)
    log.info("\n" + results_table(transfer))
    log.info("\nsummary: " + json.dumps({k: round(v, 4) for k, v in results["summary"].items()}))
    log.info(f"demo: done in {results['minutes']:.1f} min; results in {workdir / 'results.json'}")
    return results


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", default="runs/emojigram-data", help="shared corpora and vocabularies")
    parser.add_argument("--tfds-dir", default=None, help="TFDS data_dir for the target (default: the project's)")


def _run(config: ml_collections.ConfigDict, args: argparse.Namespace) -> int:
    if "data" not in config or "transfer" not in config:
        raise config_lib.ConfigError(f"{args.config} is not a demo config (it lacks `data` and `transfer`)")
    tfds_dir = Path(args.tfds_dir) if args.tfds_dir else paths.tfds_data_dir()
    with runner.hold_workdir(args.workdir, "demo") as workdir:  # one demo per folder at a time
        results = run(config, workdir, Path(args.data_root).resolve(), tfds_dir)
    return EXIT_PREEMPTED if results is None else EXIT_OK


def main(argv: list[str]) -> int:
    """`python -m weaksup demo [--workdir DIR] [--config FILE[:ARGS]] [--config.key=value ...]`."""
    return runner.run_config_command("demo", __doc__, argv, _run, config_default=str(DEFAULT_CONFIG),
                                     workdir_default="runs/demo", add_arguments=_add_arguments)
