"""State-dict files: read PyTorch (.pth, .pt, .torch, .bin) and .safetensors files, write .safetensors.

A state dict here is a plain {key: numpy array}. `.safetensors` is read and written with
safetensors' numpy API, so exporting and importing that format needs no PyTorch; PyTorch
files are read with `torch.load(weights_only=True)` (no arbitrary unpickling), which needs
torch installed. Released checkpoints often wrap the state dict ({"state_dict": ...},
{"model": ...}) or carry DistributedDataParallel's "module." prefix; both are undone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.numpy

from weaksup import atomic
from weaksup.errors import UsageError

StateDict = dict[str, np.ndarray]

# SWAG releases its weights as .torch files; Hugging Face as pytorch_model.bin.
TORCH_SUFFIXES = (".pth", ".pt", ".torch", ".bin")
SAFETENSORS_SUFFIX = ".safetensors"
_WRAPPERS = ("state_dict", "model", "model_state_dict", "module")


class WeightsFileError(UsageError, ValueError):
    """A weights file that is missing, unreadable or holds no state dict."""


def _unwrap(obj: Any, path: Path) -> Mapping[str, Any]:
    while isinstance(obj, Mapping) and not _is_state_dict(obj):
        inner = next((obj[k] for k in _WRAPPERS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping) or not _is_state_dict(obj):
        raise WeightsFileError(f"{path}: holds no state dict (a mapping of names to tensors)")
    return obj


def _is_state_dict(obj: Mapping[str, Any]) -> bool:
    return bool(obj) and all(isinstance(k, str) and hasattr(v, "shape") for k, v in obj.items())


def _strip_module_prefix(state: StateDict) -> StateDict:
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return state


def read_state_dict(path: str | os.PathLike) -> StateDict:
    """The state dict of a PyTorch (TORCH_SUFFIXES) or `.safetensors` file, as numpy arrays."""
    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == SAFETENSORS_SUFFIX:
        try:  # safetensors raises its own error types for a bad header or dtype
            state = safetensors.numpy.load_file(str(path))
        except Exception as e:  # noqa: BLE001
            raise WeightsFileError(f"{path}: not a readable safetensors file: {e}") from None
    elif suffix in TORCH_SUFFIXES:
        state = _read_torch(path)
    else:
        raise WeightsFileError(f"{path}: unknown weights format {suffix!r}; expected "
                               f"{', '.join(TORCH_SUFFIXES)} or {SAFETENSORS_SUFFIX}")
    return _strip_module_prefix({k: np.asarray(v) for k, v in state.items()})


def _read_torch(path: Path) -> StateDict:
    try:
        # torch is optional (only PyTorch files need it) and slow to import: imported here.
        import torch
    except ImportError:
        raise WeightsFileError(f"{path}: reading a PyTorch file needs torch (pip install torch), "
                               "or convert it to .safetensors") from None
    try:  # unpickling refused or a corrupt archive: many error types
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise WeightsFileError(f"{path}: not a readable PyTorch weights file: {type(e).__name__}: {e}") from None
    out: StateDict = {}
    for key, tensor in _unwrap(obj, path).items():
        if not isinstance(tensor, torch.Tensor):
            raise WeightsFileError(f"{path}: {key} is a {type(tensor).__name__}, not a tensor")
        t = tensor.detach().cpu()
        # numpy has no bfloat16; half-precision weights are widened, which is exact.
        if t.is_floating_point() and t.dtype != torch.float64:
            t = t.float()
        out[key] = t.numpy()
    return out


def write_safetensors(path: str | os.PathLike, tensors: Mapping[str, np.ndarray],
                      metadata: Mapping[str, str] | None = None) -> None:
    """Writes `tensors` to a `.safetensors` file atomically (temporary name, then rename)."""
    contiguous = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    with atomic.replacing(path) as tmp:
        safetensors.numpy.save_file(contiguous, str(tmp), metadata=dict(metadata or {}))


def read_safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata of a `.safetensors` file's header."""
    with safetensors.safe_open(str(path), "np") as f:
        return dict(f.metadata() or {})
