"""Allowed values of every numeric or enumerated setting, in one declarative table.

`PRETRAIN` and `EVALUATE` map a config key (dotted) to a `Rule`: its type, its range or
its choices, and whether None is allowed. `weaksup.config.check_config` checks a pretraining
config against `PRETRAIN` (and the evaluate command its config against `EVALUATE`);
`OPTIONS` holds the command-line options, which the CLIs check through
`option_type("vocab.top_k")` as an argparse `type=`. A value out of range is a usage error
(exit 2) that names the key and the allowed range, before anything is written.

`writable_folder` and `writable_file` check a `--workdir` / `--output` path the same way.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from weaksup.errors import UsageError


@dataclass(frozen=True)
class Rule:
    """What one setting may hold: a type with an optional closed/open range, or choices."""

    kind: type  # int, float or str (an int is accepted where a float is asked)
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # the range excludes `low`
    high_open: bool = False
    choices: tuple[Any, ...] = ()
    optional: bool = False  # None allowed (an unset duration, no clipping)
    also: tuple[Any, ...] = ()  # special values allowed outside the range (-1: "all devices")

    def describe(self) -> str:
        """'an int >= 1', 'a float in (0, 1]', 'one of natural, sqrt, uniform' (+ 'or None')."""
        if self.choices:
            text = "one of " + ", ".join(str(c) for c in self.choices)
        else:
            text = {int: "an int", float: "a number", str: "a string"}.get(self.kind, self.kind.__name__)
            if self.low is not None and self.high is not None:
                text += (f" in {'(' if self.low_open else '['}{_num(self.low)}, "
                         f"{_num(self.high)}{')' if self.high_open else ']'}")
            elif self.low is not None:
                text += f" {'>' if self.low_open else '>='} {_num(self.low)}"
            elif self.high is not None:
                text += f" {'<' if self.high_open else '<='} {_num(self.high)}"
        extra = [str(a) for a in self.also] + (["None"] if self.optional else [])
        return text + (f" (or {', '.join(extra)})" if extra else "")

    def problem(self, value: Any) -> str | None:
        """None if `value` is allowed, else what is wrong with it."""
        if value is None:
            return None if self.optional else f"must be {self.describe()}, got None"
        if value in self.also and not isinstance(value, bool):
            return None
        if self.choices:
            return None if value in self.choices else f"must be {self.describe()}, got {value!r}"
        if self.kind is str:
            return None if isinstance(value, str) else f"must be {self.describe()}, got {value!r}"
        numeric = (int,) if self.kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, numeric) or (
                isinstance(value, float) and not math.isfinite(value)):
            return f"must be {self.describe()}, got {value!r}"
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return f"must be {self.describe()}, got {value!r}"
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            return f"must be {self.describe()}, got {value!r}"
        return None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _fraction(*, low_open: bool = False, high_open: bool = False) -> Rule:
    return Rule(float, 0, 1, low_open=low_open, high_open=high_open)


_POSITIVE_INT = Rule(int, 1)
_COUNT = Rule(int, 0)
_MESH_AXIS = Rule(int, 1, also=(-1,))

# Every numeric or enumerated field of `config.pretrain_config()`.
PRETRAIN: dict[str, Rule] = {
    "seed": _COUNT,
    "input.global_batch_size": _POSITIVE_INT,
    "input.image_size": Rule(int, 8, 4096),
    "input.resampling": Rule(str, choices=("natural", "sqrt", "uniform", "metaclip")),
    "input.balance_t": Rule(int, 1),
    "input.label_noise": _fraction(),
    "input.max_labels": _POSITIVE_INT,
    "input.num_workers": _COUNT,
    "input.num_threads": _POSITIVE_INT,
    "input.decoded_cache_mb": _COUNT,
    "input.crop_min_area": _fraction(low_open=True),
    "optim.name": Rule(str, choices=("sgd", "adamw")),
    "optim.momentum": _fraction(high_open=True),
    "optim.b1": _fraction(high_open=True),
    "optim.b2": _fraction(high_open=True),
    "optim.eps": Rule(float, 0, low_open=True),
    "optim.weight_decay": Rule(float, 0),
    "optim.base_lr": Rule(float, 0, low_open=True),
    "optim.base_batch_size": _POSITIVE_INT,
    "optim.warmup_steps": Rule(int, 0, optional=True),
    "optim.warmup_epochs": Rule(float, 0, optional=True),
    "optim.warmup_examples": Rule(int, 0, optional=True),
    "optim.schedule": Rule(str, choices=("step", "cosine", "linear", "constant")),
    "optim.decay_factor": _fraction(low_open=True),
    "optim.final_lr_fraction": _fraction(),
    "optim.label_smoothing": _fraction(high_open=True),
    "optim.grad_accum_steps": _POSITIVE_INT,
    "optim.grad_clip_norm": Rule(float, 0, low_open=True, optional=True),
    "optim.ema_decay": _fraction(high_open=True),
    "loss": Rule(str, choices=("softmax", "sigmoid")),
    "total_steps": Rule(int, 1, optional=True),
    "total_epochs": Rule(float, 0, low_open=True, optional=True),
    "total_examples": Rule(int, 1, optional=True),
    "mesh.data": _MESH_AXIS,
    "mesh.fsdp": _MESH_AXIS,
    "checkpoint.every_steps": Rule(int, 1, optional=True),
    "checkpoint.every_minutes": Rule(float, 0, low_open=True, optional=True),
    "checkpoint.keep": _POSITIVE_INT,
    "checkpoint.best_mode": Rule(str, choices=("min", "max")),
    "checkpoint.on_corrupt": Rule(str, choices=("fallback", "fail")),
    "log_every_steps": _POSITIVE_INT,
    "holdout_records": _COUNT,
    "holdout_every_steps": _COUNT,
    "nan_policy": Rule(str, choices=("stop", "rollback")),
    "max_rollbacks": _COUNT,
}

# Every numeric or enumerated field of `config.evaluate_config()`.
EVALUATE: dict[str, Rule] = {
    "seed": _COUNT,
    "pretrained.step": Rule(int, 0, also=(-1,)),
    "mesh.data": _MESH_AXIS,
    "mesh.fsdp": _MESH_AXIS,
    "dataset.val_fraction": _fraction(low_open=True, high_open=True),
    "dataset.image_size": Rule(int, 8, 4096, also=(0,)),
    "dataset.batch_size": _POSITIVE_INT,
}

# Command-line options of the commands that take no config ("command.option").
OPTIONS: dict[str, Rule] = {
    "vocab.top_k": _POSITIVE_INT,
    "vocab.min_count": _POSITIVE_INT,
    "models.num_classes": _POSITIVE_INT,
    "models.image_size": Rule(int, 8, 4096),
}


def _lookup(config: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, Mapping) and not hasattr(node, "keys"):
            return False, None
        if part not in node:
            return False, None
        node = node[part]
    return True, node


def problems(config: Mapping[str, Any], table: Mapping[str, Rule]) -> list[str]:
    """'key must be ..., got ...' for each field of `config` that breaks its rule (absent keys pass)."""
    out = []
    for key, rule in table.items():
        present, value = _lookup(config, key)
        if present:
            problem = rule.problem(value)
            if problem:
                out.append(f"{key} {problem}")
    return out


def option_type(name: str) -> Callable[[str], Any]:
    """An argparse `type=` for the option `name` of `OPTIONS`: parses and range-checks."""
    rule = OPTIONS[name]

    def parse(text: str) -> Any:
        try:
            value = text if rule.kind is str else rule.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {rule.describe()}, got {text!r}") from None
        problem = rule.problem(value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = name.rsplit(".", 1)[-1]  # argparse names the type in some messages
    return parse


def writable_folder(path: str | os.PathLike[str], what: str = "--workdir") -> Path:
    """`path` resolved, if it is (or can become) a folder this process may write; else UsageError.

    Creates nothing: a missing folder passes when its nearest existing ancestor is a
    writable folder.
    """
    path = Path(path).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise UsageError(f"{what} {path} is not a folder")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"{what} {path}: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {path}: {probe} is not writable")
    return path


def writable_file(path: str | os.PathLike[str], what: str = "--output") -> Path:
    """`path` resolved, if a file may be written there (not a folder, its folder writable); else UsageError."""
    path = Path(path).expanduser().resolve()
    if path.is_dir():
        raise UsageError(f"{what} {path} is a folder, not a file")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{what} {path} is not writable")
    writable_folder(path.parent, what)
    return path
