"""Experiment configs: `configs/NAME.py:arg` files, `--config.key=value` overrides, durations.

A config file defines `get_config(arg: str | None = None) -> ml_collections.ConfigDict`;
`arg` is a big_vision-style "key=value,key2=value" string that the file parses with
`parse_arg`. `load_config` loads the file, applies command-line overrides on top and locks
the result, so a misspelt key is an error instead of a silently ignored setting.

Defaults live in one place: `pretrain_config()` and `evaluate_config()` return every
field with its default, experiment files start from one of them and set only what they
change, and the code reads fields directly (no `.get(key, default)` restating a default).

Durations (`total_steps` / `total_epochs` / `total_examples`, and the warm-up's
`optim.warmup_steps` / `optim.warmup_epochs` / `optim.warmup_examples`) are turned into
steps in exactly one place, `duration_steps`; the trainer only knows steps.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ml_collections

from weaksup import validation
from weaksup.errors import UsageError



class ConfigError(UsageError, ValueError):
    """A config that cannot be loaded, an unknown key or an impossible setting."""


# `deterministic` (pretraining and evaluation; applied by weaksup.runner before JAX starts):
# on GPU, XLA's deterministic reductions and scatters (--xla_gpu_deterministic_ops), so a run
# repeated, or resumed after a kill, gives the same weights bit for bit. Without them, two
# identical 40-step runs of configs/tiny.py on an H200 differed in 180 of their 183 arrays;
# with them, both runs and a SIGKILLed-and-resumed one were equal. False trades that for
# speed. CPU and TPU programs are deterministic either way.


def pretrain_config() -> ml_collections.ConfigDict:
    """Every pretraining field with its default; experiment configs start from this."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.deterministic = True  # see the note above pretrain_config
    c.corpus_dir = ""  # ArrayRecord corpus (python -m weaksup corpus build)
    c.vocab_path = ""  # its vocabulary (python -m weaksup vocab build)
    c.model = ml_collections.ConfigDict({"name": "", "overrides": {}})

    c.input = ml_collections.ConfigDict()
    c.input.global_batch_size = 0  # required: > 0
    c.input.image_size = 224
    c.input.resampling = "natural"  # natural | sqrt | uniform | metaclip (weaksup.sampling)
    c.input.balance_t = 20_000  # metaclip: keep a post w.p. max over labels of min(1, t / count)
    c.input.label_noise = 0.0  # share of hashtag occurrences replaced by draws from the marginal
    c.input.max_labels = 8
    c.input.num_workers = 0  # grain decode worker processes (0: threads in this process)
    c.input.num_threads = 2
    # A corpus of small pictures (the demo's 84,625 of 64 px: 992 MB) decodes once into
    # memory, up to this many MB; 0: decode every crop (weaksup.picture_cache). Threads
    # only (num_workers 0).
    c.input.decoded_cache_mb = 2048
    c.input.crop_min_area = 0.08  # Inception's random-resized crop
    # A vocabulary built from another corpus is an error unless this is set: a fixed label
    # space across corpus sizes (the paper's Fig. 3 design) labels a subset with the
    # vocabulary of the whole.
    c.input.allow_corpus_mismatch = False

    c.optim = ml_collections.ConfigDict()
    c.optim.name = "sgd"  # sgd (SGD-Nesterov, coupled decay: the paper's) | adamw (decoupled decay)
    c.optim.momentum = 0.9
    c.optim.b1 = 0.9  # AdamW
    c.optim.b2 = 0.999
    c.optim.eps = 1e-8
    c.optim.nesterov = True
    c.optim.weight_decay = 1e-4
    c.optim.base_lr = 0.1  # per base_batch_size images (linear scaling rule)
    c.optim.base_batch_size = 256
    c.optim.warmup_steps = None  # at most one of the three warm-up durations
    c.optim.warmup_epochs = None
    c.optim.warmup_examples = None
    c.optim.schedule = "step"  # step | cosine | linear | constant, after the warm-up (weaksup.optimizer)
    c.optim.decay_at = (0.3, 0.6, 0.9)
    c.optim.decay_factor = 0.1
    c.optim.final_lr_fraction = 0.0
    c.optim.label_smoothing = 0.0
    c.optim.grad_accum_steps = 1
    c.optim.grad_clip_norm = None
    c.optim.ema_decay = 0.0  # > 0: keep a moving average of the weights in the optimiser state
    c.loss = "softmax"  # softmax (1/k targets, the paper's) | sigmoid

    # Exactly one duration; `total_steps(config, n)` resolves it.
    c.total_steps = None
    c.total_epochs = None
    c.total_examples = None

    c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1})
    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.every_steps = None
    c.checkpoint.every_minutes = None
    c.checkpoint.keep = 3
    c.checkpoint.best_metric = ""
    c.checkpoint.best_mode = "min"
    c.checkpoint.async_save = True
    # A latest checkpoint that fails its checksums: "fallback" restores the newest good one
    # (with a warning), "fail" stops the run (weaksup.checkpoint).
    c.checkpoint.on_corrupt = "fallback"
    c.log_every_steps = 10
    # The corpus's last records never enter training; the trainer reports hashtag mAP on them.
    c.holdout_records = 0
    c.holdout_every_steps = 0  # 0: every log_every_steps
    c.nan_policy = "stop"  # stop | rollback (to the last checkpoint, skipping the bad batch)
    c.max_rollbacks = 3
    # Periodic evaluators: {name: {type, every_steps, ...options}} (weaksup.evaluators).
    c.evals = ml_collections.ConfigDict()
    return c


def evaluate_config() -> ml_collections.ConfigDict:
    """Every field of `python -m weaksup evaluate` with its default (see weaksup.evaluators.cli)."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.deterministic = True  # see the note above pretrain_config
    c.pretrained = ml_collections.ConfigDict({"workdir": "", "step": -1})  # step -1: the latest
    c.model = ml_collections.ConfigDict({"name": "", "overrides": {}})  # needed without a checkpoint
    c.random_baseline = True
    c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1})
    c.cache_dir = ""  # "": WORKDIR/feature_cache

    c.dataset = ml_collections.ConfigDict()
    c.dataset.name = ""  # a TFDS name
    c.dataset.data_dir = ""
    c.dataset.image_key = "image"
    c.dataset.label_key = "label"
    c.dataset.train_split = "train"
    c.dataset.val_split = ""  # "": carved from the training split (val_fraction)
    c.dataset.test_split = "test"
    c.dataset.val_fraction = 0.2
    c.dataset.image_size = 0  # 0: the pretraining image size
    c.dataset.batch_size = 64
    c.evals = ml_collections.ConfigDict()
    return c


def _missing_fields(config: ml_collections.ConfigDict, defaults: ml_collections.ConfigDict,
                    prefix: str = "") -> list[str]:
    out = []
    for key, value in defaults.items():
        name = f"{prefix}{key}"
        if key not in config:
            out.append(name)
        elif isinstance(value, ml_collections.ConfigDict) and len(value) and key not in ("evals", "overrides"):
            if not isinstance(config[key], ml_collections.ConfigDict):
                out.append(name)
            else:
                out += _missing_fields(config[key], value, name + ".")
    return out


def parse_arg(arg: str | None, **defaults: Any) -> ml_collections.ConfigDict:
    """Parses "key=value,key2" into a ConfigDict typed after `defaults`.

    A bare `key` sets a boolean default to True (`runlocal` style). Keys that are not in
    `defaults` are an error, so a typo in `--config file.py:arg` cannot pass unnoticed.
    """
    out = ml_collections.ConfigDict(dict(defaults))
    if not arg:
        return out
    for item in arg.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, raw = item.partition("=")
        key = key.strip()
        if key not in defaults:
            known = ", ".join(sorted(defaults)) or "none"
            raise ConfigError(f"unknown config argument {key!r} (known: {known})")
        default = defaults[key]
        if not sep:
            if not isinstance(default, bool):
                raise ConfigError(f"config argument {key!r} needs a value ({key}=...)")
            out[key] = True
            continue
        out[key] = _coerce(raw.strip(), default, key)
    return out


def _coerce(raw: str, like: Any, key: str) -> Any:
    """Converts command-line text to the type of an existing value."""
    try:
        if isinstance(like, bool):
            low = raw.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"not a boolean: {raw!r}")
        if isinstance(like, int):
            return int(raw)
        if isinstance(like, float):
            return float(raw)
        if isinstance(like, str):
            return raw
        if like is None:
            try:
                return ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                return raw
        value = ast.literal_eval(raw)
        if isinstance(like, (tuple, list)):
            value = type(like)(value if isinstance(value, (tuple, list)) else (value,))
        return value
    except (ValueError, SyntaxError) as e:
        raise ConfigError(f"bad value for {key}: {raw!r} ({e})") from None


def _load_module(path: Path):
    spec = importlib.util.spec_from_file_location(f"weaksup_config_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{path}: not a Python config file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(f"{path}: failed to import: {type(e).__name__}: {e}") from e
    if not hasattr(module, "get_config"):
        raise ConfigError(f"{path}: defines no get_config(arg)")
    return module


def apply_overrides(config: ml_collections.ConfigDict, overrides: Sequence[str]) -> None:
    """Applies "--config.a.b=value" (or "a.b=value") overrides in place.

    Values take the type of the field they replace; unknown keys raise ConfigError.
    """
    for item in overrides:
        text = item
        if text.startswith("--config."):
            text = text[len("--config.") :]
        elif text.startswith("config."):
            text = text[len("config.") :]
        key, sep, raw = text.partition("=")
        if not sep or not key:
            raise ConfigError(f"bad override {item!r}: expected --config.key=value")
        *parents, leaf = key.split(".")
        node = config
        for i, part in enumerate(parents):
            if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
                raise ConfigError(f"unknown config key {'.'.join(parents[: i + 1])!r} in {item!r}")
            node = node[part]
        if leaf not in node:
            raise ConfigError(f"unknown config key {key!r} in {item!r}")
        old = node[leaf]
        if isinstance(old, ml_collections.ConfigDict):
            try:
                value = ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                raise ConfigError(f"{key} is a group; give a Python dict literal, got {raw!r}") from None
            if not isinstance(value, Mapping):
                raise ConfigError(f"{key} is a group; give a dict, got {raw!r}")
            node[leaf] = ml_collections.ConfigDict(dict(value))
        else:
            node[leaf] = _coerce(raw, old, key)


def shipped_configs() -> Path | None:
    """The folder of the configs installed with the package (the repository's `configs/`)."""
    found = importlib.util.find_spec("configs")
    if found is None or not found.submodule_search_locations:
        return None
    folder = Path(next(iter(found.submodule_search_locations)))
    return folder if (folder / "tiny.py").is_file() else None  # ours, not another package's


def config_path(name: str) -> Path:
    """A config file given by path (`configs/tiny.py`) or by name (`tiny`), from any directory."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = shipped_configs()
    if shipped is not None and path.parent == Path(".") and (shipped / f"{path.stem}.py").is_file():
        return shipped / f"{path.stem}.py"
    names = sorted(p.stem for p in shipped.glob("*.py") if not p.stem.startswith("_")) if shipped else []
    hint = f" (shipped configs: {', '.join(names)})" if names else ""
    raise ConfigError(f"config file not found: {path}{hint}")


def load_config(spec: str, overrides: Sequence[str] = (), lock: bool = True) -> ml_collections.ConfigDict:
    """Loads `path.py[:arg]`, applies `overrides` and (by default) locks the config."""
    path_text, _, arg = spec.partition(":")
    path = config_path(path_text)
    module = _load_module(path)
    try:
        config = module.get_config(arg or None)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"{path}: get_config returned {type(config).__name__}, not a ConfigDict")
    apply_overrides(config, overrides)
    if lock:
        config.lock()
    return config


def config_to_json(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The config as plain JSON data (tuples become lists)."""
    return json.loads(config.to_json_best_effort(sort_keys=True))


def config_from_json(data: Mapping[str, Any]) -> ml_collections.ConfigDict:
    """Rebuilds a (locked) ConfigDict from `config_to_json` output."""
    config = ml_collections.ConfigDict(dict(data))
    config.lock()
    return config


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{dotted key: leaf} of a nested `config_to_json` dict (an empty dict is a leaf)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


class _Absent:
    """A key one of two configs lacks (a config saved before the field existed)."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT = _Absent()


def config_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{dotted key: (old, new)} for every leaf that differs between two `config_to_json` dicts.

    A key only one side has appears with `ABSENT` on the other; keys come sorted.
    """
    a, b = flatten(old), flatten(new)
    return {k: (a.get(k, ABSENT), b.get(k, ABSENT)) for k in sorted(set(a) | set(b))
            if a.get(k, ABSENT) != b.get(k, ABSENT)}


def format_value(value: Any) -> str:
    """A config value as a message shows it (JSON-like, `(absent)` for a missing key)."""
    return repr(value) if value is ABSENT else json.dumps(value, default=str)


def duration_steps(
    *,
    steps: int | None = None,
    epochs: float | None = None,
    examples: int | None = None,
    global_batch_size: int,
    num_examples: int | None = None,
    name: str = "duration",
) -> int:
    """Turns a duration given as steps, epochs or examples (exactly one) into steps.

    Epochs need `num_examples` (the training set size); partial steps round up so a
    duration is never silently shorter than asked.
    """
    given = {k: v for k, v in (("steps", steps), ("epochs", epochs), ("examples", examples)) if v is not None}
    if len(given) != 1:
        raise ConfigError(f"{name}: set exactly one of steps/epochs/examples, got {sorted(given) or 'none'}")
    if global_batch_size <= 0:
        raise ConfigError(f"{name}: global batch size must be positive, got {global_batch_size}")
    if steps is not None:
        if steps < 0:
            raise ConfigError(f"{name}: negative steps {steps}")
        return int(steps)
    if examples is not None:
        if examples < 0:
            raise ConfigError(f"{name}: negative examples {examples}")
        return int(math.ceil(examples / global_batch_size))
    if num_examples is None or num_examples <= 0:
        raise ConfigError(f"{name}: given in epochs but the training set size is unknown")
    if epochs < 0:
        raise ConfigError(f"{name}: negative epochs {epochs}")
    return int(math.ceil(epochs * num_examples / global_batch_size))


def total_steps(config: ml_collections.ConfigDict, num_examples: int | None = None) -> int:
    """Training length in steps from `total_steps` / `total_epochs` / `total_examples`."""
    return duration_steps(
        steps=config.total_steps,
        epochs=config.total_epochs,
        examples=config.total_examples,
        global_batch_size=config.input.global_batch_size,
        num_examples=num_examples,
        name="total",
    )


def warmup_steps(config: ml_collections.ConfigDict, num_examples: int | None = None) -> int:
    """Warm-up length in steps from `optim.warmup_steps` / `_epochs` / `_examples` (0 if none)."""
    optim = config.optim
    s, e, x = optim.warmup_steps, optim.warmup_epochs, optim.warmup_examples
    if s is None and e is None and x is None:
        return 0
    return duration_steps(
        steps=s,
        epochs=e,
        examples=x,
        global_batch_size=config.input.global_batch_size,
        num_examples=num_examples,
        name="optim.warmup",
    )


def check_config(config: ml_collections.ConfigDict) -> None:
    """Cheap checks that need no data and no devices: every field present and in its range.

    The ranges and choices are `weaksup.validation.PRETRAIN`'s; the first problem is raised.
    """
    missing = _missing_fields(config, pretrain_config())
    if missing:
        raise ConfigError(f"config lacks {', '.join(missing)}: start it from weaksup.config.pretrain_config()")
    check_values(config, validation.PRETRAIN)
    if not isinstance(config.model.overrides, (Mapping, ml_collections.ConfigDict)):
        raise ConfigError(f"config.model.overrides must be a dict, got {config.model.overrides!r}")


def check_values(config: ml_collections.ConfigDict, table: Mapping[str, validation.Rule]) -> None:
    """Raises ConfigError naming the first field of `config` outside its rule in `table`."""
    found = validation.problems(config, table)
    if found:
        raise ConfigError(f"config.{found[0]}")
