"""Transfer evaluators: linear probe, few-shot ridge and fine-tuning on TFDS targets.

Each evaluator is a module exposing `Evaluator`, built as
`Evaluator(model=..., mesh=..., **options)` and run as `run(variables, step=None) ->
dict[str, float]`. `get_evaluator(type)` finds the class by type name (plug-ins by module
path: a dotted path "package.module" works too). The command line,
`python -m weaksup evaluate`, lives in `weaksup.evaluators.cli`.
"""

from __future__ import annotations

import importlib
from typing import Any

EVALUATORS: dict[str, str] = {
    "linear_probe": "weaksup.evaluators.linear_probe",
    "fewshot_ridge": "weaksup.evaluators.fewshot_ridge",
    "finetune": "weaksup.evaluators.finetune",
}


def get_evaluator(type_name: str) -> Any:
    """The Evaluator class for a type name ("linear_probe", ...) or a module path."""
    module = EVALUATORS.get(type_name)
    if module is None:
        if "." not in type_name:
            raise ValueError(f"unknown evaluator type {type_name!r}; known: {', '.join(EVALUATORS)}")
        module = type_name
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        raise ValueError(f"evaluator type {type_name!r}: cannot import {module}: {e}") from None
    if not hasattr(mod, "Evaluator"):
        raise ValueError(f"evaluator module {module} has no `Evaluator`")
    return mod.Evaluator


__all__ = ["EVALUATORS", "get_evaluator"]
