"""`python -m weaksup evaluate --config configs/Y.py[:arg] --workdir DIR [--config.key=value ...]`.

Runs every evaluator of `config.evals` on the target `config.dataset`, from the
pretrained checkpoint `config.pretrained.workdir` and -- with `config.random_baseline`
(or when no pretrained workdir is given) -- from a random initialisation of the same
architecture, the baseline the pretrained numbers are read against. Results go to
DIR/results.json and DIR/results.md (rewritten after each evaluator; `meta.complete`
turns true at the end), features to DIR/feature_cache, each evaluator's own files (fine-tune checkpoints) to
DIR/evaluators/NAME-INIT/.

Config fields (defaults: `weaksup.config.evaluate_config()`):
  pretrained.workdir, pretrained.step (-1: latest)   the pretraining run ("" for none)
  model.name, model.overrides                          architecture (must match the
                                                       checkpoint's when both are given)
  random_baseline (bool), seed, mesh (data, fsdp), cache_dir ("" -> DIR/feature_cache)
  dataset: name, data_dir, image_key, label_key, train_split, val_split, test_split,
           val_fraction, image_size (0 -> the pretraining image size), batch_size
  evals: {name: {type: linear_probe | fewshot_ridge | finetune, ...options}}

The same evaluators run periodically during pretraining from the training config, e.g.

    c.evals.probe = dict(type="linear_probe", every_steps=100, dataset="emojigram_target/emojione_32",
                         data_dir=DIR, val_split="validation", batch_size=64, l2_grid=(1e-3, 1e-4))

(the trainer builds them with `weaksup.evaluators.build` as this command does; features
are not cached then). Exit status: 0 done, 2 a config, dataset or checkpoint problem.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import jax
import ml_collections

from weaksup import checkpoint as ckpt_lib
from weaksup import config as config_lib
from weaksup import evaluators, runner, sharding, train_lib, validation
from weaksup.config import ConfigError
from weaksup.errors import EXIT_OK
from weaksup.evaluators.results import markdown_table, write_results
from weaksup.hashtags.vocabulary import Vocabulary
from weaksup.input_pipeline import Target

log = logging.getLogger(__name__)


class EvaluateError(ConfigError):
    """An evaluation config that cannot be run as written."""


@dataclasses.dataclass
class Init:
    """One set of weights to evaluate: the pretrained checkpoint or a random initialisation."""

    name: str  # "pretrained" | "random"
    arch: str
    model: Any
    variables: train_lib.State
    checkpoint_id: str  # the weights' identity in the feature cache
    step: int
    image_size: int
    labels: Vocabulary | None  # what the head predicts (the pretraining vocabulary)


def load_inits(config: ml_collections.ConfigDict, mesh: Any) -> list[Init]:
    """The weights to evaluate: the pretrained checkpoint and/or a random initialisation."""
    name, overrides = config.model.name, dict(config.model.overrides)
    workdir = config.pretrained.workdir
    inits: list[Init] = []
    pre_size = None
    if workdir:
        want = int(config.pretrained.step)
        step = None if want < 0 else want
        pcfg, vocab, model, variables = ckpt_lib.load_pretrained(workdir, step=step, mesh=mesh)
        if step is None:
            # The step load_pretrained restored: the newest intact one (it has warned of any it skipped).
            ckpt = ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(workdir), read_only=True, warn=lambda _: None)
            step = ckpt.latest_good_step()
            ckpt.close()
        saved = (str(pcfg.model.name), dict(pcfg.model.overrides))
        if name and (name, overrides) != saved:
            raise EvaluateError(f"checkpoint {ckpt_lib.checkpoint_dir(workdir)} holds a {saved[0]} {saved[1] or ''}"
                                f" but the evaluation config asks for {name} {overrides or ''}")
        name, overrides = saved
        pre_size = int(pcfg.input.image_size)
        inits.append(Init("pretrained", saved[0], model, variables, str(Path(workdir).resolve()), step, pre_size,
                          vocab))
    if not name:
        raise EvaluateError("no pretrained.workdir and no model.name: nothing to evaluate")
    if not workdir or config.random_baseline:
        num_classes = inits[0].model.num_classes if inits else 1
        model = train_lib.model_from_config(ml_collections.ConfigDict({"name": name, "overrides": overrides}),
                                            num_classes)
        size = pre_size or int(config.dataset.image_size or 32)
        seed = int(config.seed)
        variables, _ = train_lib.create_train_state(model, mesh, size, rng=jax.random.PRNGKey(seed))
        inits.append(Init("random", name, model, variables,
                          f"random:{name}:{json.dumps(overrides, sort_keys=True)}:{seed}", 0, size,
                          inits[0].labels if inits else None))
    return inits


def evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, dict[str, dict[str, float]]]:
    """Runs all evaluators for all inits; writes and returns {init: {eval: {metric: value}}}."""
    workdir = Path(workdir).resolve()
    config_lib.check_values(config, validation.EVALUATE)
    mesh = sharding.make_mesh(config.mesh)
    dataset = {("dataset" if k == "name" else k): v for k, v in config.dataset.items()}
    # Fail on a wrong dataset name, split or key before loading or compiling anything.
    Target.from_options({k: v for k, v in dataset.items() if k != "image_size"})[0].check()
    evals = {name: dict(cfg) for name, cfg in config.evals.items()}
    if not evals:
        raise EvaluateError("config.evals is empty")
    for name, cfg in evals.items():
        if "type" not in cfg:
            raise EvaluateError(f"evals.{name} has no `type`")
        try:
            evaluators.get_evaluator(cfg["type"])  # unknown types fail now, not after the first evaluator
        except ConfigError as e:
            raise EvaluateError(f"evals.{name}: {e}") from None
    inits = load_inits(config, mesh)
    cache_dir = config.cache_dir or workdir / "feature_cache"
    results: dict[str, dict[str, dict[str, float]]] = {init.name: {} for init in inits}
    meta = {"dataset": dataset["dataset"], "pretrained": config.pretrained.workdir,
            "step": next((init.step for init in inits if init.name == "pretrained"), None),
            "model": inits[0].arch, "complete": False}
    jax_main = jax.process_index() == 0
    for init in inits:
        for name, cfg in evals.items():
            options = {**{k: v for k, v in dataset.items() if not (k == "image_size" and not v)},
                       **{k: v for k, v in cfg.items() if k != "type"}}
            evaluator = evaluators.build(cfg["type"], options, model=init.model, mesh=mesh, image_size=init.image_size,
                                         cache_dir=cache_dir, checkpoint_id=init.checkpoint_id,
                                         workdir=workdir / "evaluators" / f"{name}-{init.name}", labels=init.labels)
            t0 = time.time()
            metrics = dict(evaluator.run(init.variables, step=init.step))
            metrics["seconds"] = round(time.time() - t0, 2)
            results[init.name][name] = metrics
            log.info("evaluate: %s %s: %s", init.name, name, ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
            if jax_main:
                write_results(workdir, results, meta)
    meta["complete"] = True
    if jax_main:
        write_results(workdir, results, meta)
    return results


def _run(config: ml_collections.ConfigDict, args: argparse.Namespace) -> int:
    t0 = time.time()
    with runner.hold_workdir(args.workdir, "evaluate"):  # one evaluation per folder at a time
        results = evaluate(config, args.workdir)
    if jax.process_index() == 0:  # the run's summary: every metric beside its random-init floor
        log.info("evaluate: done in %.1f min\n%s\nresults: %s (and results.json)", (time.time() - t0) / 60,
                 markdown_table(results).rstrip(), Path(args.workdir) / "results.md")
    return EXIT_OK


def main(argv: list[str]) -> int:
    """Command-line entry point (see the module docstring)."""
    return runner.run_config_command("evaluate", __doc__.split("\n\n")[0], argv, _run,
                                     workdir_help="evaluation directory: results, caches, fine-tunes")
