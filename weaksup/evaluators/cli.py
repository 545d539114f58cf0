"""`python -m weaksup evaluate --config configs/Y.py[:arg] --workdir DIR [--config.key=value ...]`.

Runs every evaluator of `config.evals` on the target `config.dataset`, from the
pretrained checkpoint `config.pretrained.workdir` and -- with `config.random_baseline`
(or when no pretrained workdir is given) -- from a random initialisation of the same
architecture, the baseline the pretrained numbers are read against. Results go to
DIR/results.json and DIR/results.md (rewritten after each evaluator; `meta.complete`
turns true at the end), features to DIR/feature_cache, fine-tunes to DIR/finetune/.

Config fields:
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

(the trainer builds them with its model, mesh and config; features are not cached then).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from weaksup import config as config_lib
from weaksup import sharding


class EvaluateError(ValueError):
    """An evaluation config that cannot be run as written."""


def _model_spec(config: Any) -> tuple[str, dict[str, Any]]:
    model = config.get("model", None) or {}
    return str(model.get("name", "") or ""), dict(model.get("overrides", {}) or {})


def load_inits(config: Any, mesh: Any) -> list[dict[str, Any]]:
    """The weights to evaluate: [{"name", "arch", "model", "variables", "checkpoint_id", "step", "image_size"}]."""
    from weaksup import checkpoint as ckpt_lib
    from weaksup import models

    name, overrides = _model_spec(config)
    pre = config.get("pretrained", None) or {}
    workdir = str(pre.get("workdir", "") or "")
    inits = []
    pre_size = None
    if workdir:
        want = int(pre.get("step", -1))
        step = None if want < 0 else want
        pcfg, vocab, model, variables = ckpt_lib.load_pretrained(workdir, step=step, mesh=mesh)
        if step is None:
            ckpt = ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(workdir), read_only=True)
            step = ckpt.latest_step()
            ckpt.close()
        saved = (str(pcfg.model.name), dict(pcfg.model.get("overrides", {}) or {}))
        if name and (name, overrides) != saved:
            raise EvaluateError(f"checkpoint {ckpt_lib.checkpoint_dir(workdir)} holds a {saved[0]} {saved[1] or ''}"
                                f" but the evaluation config asks for {name} {overrides or ''}")
        name, overrides = saved
        pre_size = int(pcfg.input.image_size)
        inits.append({"name": "pretrained", "model": model, "variables": variables,
                      "checkpoint_id": str(Path(workdir).resolve()), "step": step, "image_size": pre_size, "arch": saved[0]})
    if not name:
        raise EvaluateError("no pretrained.workdir and no model.name: nothing to evaluate")
    if not workdir or config.get("random_baseline", True):
        num_classes = inits[0]["model"].num_classes if inits else 1
        model = models.get_model(name, num_classes, **overrides)
        size = pre_size or int(config.dataset.get("image_size", 0) or 32)
        dummy = jnp.zeros((1, size, size, 3), jnp.float32)
        seed = int(config.get("seed", 0))
        init = jax.jit(lambda r: model.init(r, dummy, train=False), out_shardings=sharding.replicated(mesh))
        variables = init(jax.random.PRNGKey(seed))
        variables = {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}
        inits.append({"name": "random", "model": model, "variables": variables,
                      "checkpoint_id": f"random:{name}:{json.dumps(overrides, sort_keys=True)}:{seed}", "step": 0,
                      "image_size": size, "arch": name})
    return inits


def evaluate(config: Any, workdir: str | Path) -> dict[str, dict[str, dict[str, float]]]:
    """Runs all evaluators for all inits; writes and returns {init: {eval: {metric: value}}}."""
    from weaksup.evaluators import get_evaluator
    from weaksup.evaluators.results import write_results
    from weaksup.evaluators.target import Target

    workdir = Path(workdir).resolve()
    mesh = sharding.make_mesh(config.get("mesh", None))
    ds = dict(config.dataset)
    ds["dataset"] = ds.pop("name")
    # Fail on a wrong dataset name, split or key before loading or compiling anything.
    Target.from_options({k: v for k, v in ds.items() if k != "image_size"})[0].check()
    evals = {name: dict(cfg) for name, cfg in (config.get("evals", None) or {}).items()}
    if not evals:
        raise EvaluateError("config.evals is empty")
    for name, cfg in evals.items():
        if "type" not in cfg:
            raise EvaluateError(f"evals.{name} has no `type`")
        try:
            get_evaluator(cfg["type"])  # unknown types fail now, not after the first evaluator
        except ValueError as e:
            raise EvaluateError(f"evals.{name}: {e}") from None
    inits = load_inits(config, mesh)
    cache_dir = str(config.get("cache_dir", "") or workdir / "feature_cache")
    results: dict[str, dict[str, dict[str, float]]] = {i["name"]: {} for i in inits}
    meta = {"dataset": ds["dataset"], "pretrained": str((config.get("pretrained") or {}).get("workdir", "")),
            "step": next((i["step"] for i in inits if i["name"] == "pretrained"), None),
            "model": inits[0]["arch"], "complete": False}
    jax_main = jax.process_index() == 0
    for init in inits:
        for name, cfg in evals.items():
            kind = cfg["type"]
            cfg_all = {**ds, **{k: v for k, v in cfg.items() if k != "type"}}
            if int(cfg_all.get("image_size", 0) or 0) <= 0:
                cfg_all["image_size"] = init["image_size"]
            extra: dict[str, Any] = {"cache_dir": cache_dir, "checkpoint_id": init["checkpoint_id"]}
            if kind == "finetune":
                extra = {"workdir": workdir / "finetune" / f"{name}-{init['name']}"}
            evaluator = get_evaluator(kind)(model=init["model"], mesh=mesh, **extra, **cfg_all)
            t0 = time.time()
            metrics = dict(evaluator.run(init["variables"], step=init["step"]))
            metrics["seconds"] = round(time.time() - t0, 2)
            results[init["name"]][name] = metrics
            print(f"evaluate: {init['name']} {name}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()),
                  flush=True)
            if jax_main:
                write_results(workdir, results, meta)
    meta["complete"] = True
    if jax_main:
        write_results(workdir, results, meta)
    return results


def main(argv: list[str]) -> int:
    """Command-line entry point (see the module docstring)."""
    from weaksup import distributed

    parser = argparse.ArgumentParser(prog="python -m weaksup evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="configs/NAME.py[:key=value,...]")
    parser.add_argument("--workdir", required=True, help="evaluation directory: results, caches, fine-tunes")
    distributed.add_arguments(parser)
    args, rest = parser.parse_known_args(argv)
    bad = [a for a in rest if not a.startswith("--config.")]
    if bad:
        parser.error(f"unrecognised arguments: {' '.join(bad)}")
    from weaksup.checkpoint import CheckpointError
    from weaksup.evaluators.finetune import FinetuneError
    from weaksup.input_pipeline import EvalDataError

    try:
        config = config_lib.load_config(args.config, rest)
        distributed.initialize(distributed.from_namespace(args))
        evaluate(config, args.workdir)
    except (config_lib.ConfigError, EvaluateError, CheckpointError, EvalDataError, FinetuneError,
            sharding.ShardingError) as e:
        print(f"evaluate: error: {e}", file=sys.stderr)
        return 1
    print(f"evaluate: results in {Path(args.workdir) / 'results.md'}")
    return 0
