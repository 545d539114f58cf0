"""weaksup's parameter tree <-> PyTorch state-dict names and layouts, per model family.

One table serves both directions: `entries(model, variables)` lists, for every leaf of a
weaksup model's variables, the state-dict key it has under a naming scheme and the layout
change between the two:

  conv        flax HWIO (kh, kw, Cin / groups, Cout) <-> torch OIHW (Cout, Cin / groups, kh, kw).
              weaksup's grouped convolution (`models.grouped_conv`) stores a grouped kernel
              exactly as `nn.Conv(feature_group_count=g)`, which is torch's grouping too
              (output channel o reads the inputs of group o // (Cout / g)), so a grouped
              kernel is the same transpose.
  linear      Dense kernel (in, out) <-> torch Linear weight (out, in); also ViT's fused
              qkv projection, whose columns [q | k | v] (heads contiguous in each) are the
              rows of torch MultiheadAttention's `in_proj_weight`.
  linear_1x1  Dense kernel (in, out) <-> a torch 1x1 convolution (out, in, 1, 1): RegNetY's
              squeeze-excitation layers.
  seq_first   a position embedding (1, S, D) <-> SWAG's own (S, 1, D).
  same        everything else (biases, norm scales, BN running statistics, class token,
              torchvision's position embedding (1, S, D), class-token slot first).

Batch-norm running statistics live in weaksup's `batch_stats` collection (mean, var) and in
torch's state dict as running_mean / running_var (plus a num_batches_tracked counter that
torch's strict loading expects and inference ignores).

Schemes:
  torchvision  torchvision.models names: resnet/resnext (conv1, bn1, layer1.0.conv1, ...,
               downsample.0/1, fc; the paper's resnext101_32x*d_wsl torch-hub weights),
               regnet (stem.0/1, trunk_output.block1.block1-0.f.a.0, f.se.fc1, proj.0, fc),
               vision_transformer (conv_proj, class_token, encoder.pos_embedding,
               encoder.layers.encoder_layer_0.self_attention.in_proj_weight, mlp.0/3,
               heads.head);
  timm         timm's names where they differ: RegNet (stem.conv, s1.b1.conv1.conv,
               se.fc1, downsample.conv, head.fc), ViT (patch_embed.proj, cls_token,
               pos_embed, blocks.0.attn.qkv, mlp.fc1, norm, head); timm's ResNet names are
               torchvision's;
  swag         SWAG's own released files (read only): RegNetY (stem.stem.0,
               f.se.excitation.0, f.c, f.final_bn, proj, bn, head.fc) and ViT
               (encoder.layers.layer_0, mlp.linear_1, position embedding (S, 1, D),
               head.layers.head).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from weaksup.models import RegNetConfig, ResNetConfig, ViTConfig

SCHEMES = ("torchvision", "timm", "swag")
EXPORT_SCHEMES = ("torchvision", "timm")
LAYOUTS = ("conv", "linear", "linear_1x1", "seq_first", "same")
NUM_BATCHES_TRACKED = "num_batches_tracked"

_BLOCK = re.compile(r"stage(\d+)_block(\d+)$")
_LAYER = re.compile(r"encoder_layer_(\d+)$")


class NamingError(ValueError):
    """A scheme that has no name for a family (e.g. SWAG's for a ResNet)."""


@dataclasses.dataclass(frozen=True)
class Entry:
    """One weaksup leaf and its state-dict counterpart."""

    key: str  # torch state-dict key
    collection: str  # "params" | "batch_stats"
    path: tuple[str, ...]  # path below the collection, leaf name last
    layout: str  # one of LAYOUTS

    @property
    def is_head(self) -> bool:
        """Whether the leaf belongs to the classifier head (sized by the vocabulary)."""
        return self.path[0] == "head"

    @property
    def module(self) -> str:
        """The torch module prefix of the key (the key less its last component)."""
        return self.key.rpartition(".")[0]


def to_torch(array: np.ndarray, layout: str) -> np.ndarray:
    """A weaksup leaf in the torch layout `layout` names."""
    if layout == "conv":
        return np.transpose(array, (3, 2, 0, 1))
    if layout == "linear":
        return np.transpose(array)
    if layout == "linear_1x1":
        return np.transpose(array)[:, :, None, None]
    if layout == "seq_first":
        return np.transpose(array, (1, 0, 2))
    if layout == "same":
        return array
    raise ValueError(f"unknown layout {layout!r}")


def from_torch(array: np.ndarray, layout: str) -> np.ndarray:
    """A state-dict tensor in weaksup's layout; the inverse of `to_torch`."""
    if layout == "conv":
        return np.transpose(array, (2, 3, 1, 0))
    if layout == "linear":
        return np.transpose(array)
    if layout == "linear_1x1":
        if array.ndim != 4 or array.shape[2:] != (1, 1):
            raise ValueError(f"expected a 1x1 convolution weight (out, in, 1, 1), got {array.shape}")
        return np.transpose(array[:, :, 0, 0])
    if layout == "seq_first":
        return np.transpose(array, (1, 0, 2))
    if layout == "same":
        return array
    raise ValueError(f"unknown layout {layout!r}")


def torch_shape(shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    """The state-dict shape of a weaksup leaf of `shape`."""
    return tuple(to_torch(np.broadcast_to(np.zeros((), np.float32), shape), layout).shape)


# ----------------------------------------------------------------------------------------
# Module names per family and scheme.
# ----------------------------------------------------------------------------------------


def _block(name: str) -> tuple[int, int]:
    m = _BLOCK.match(name)
    if not m:
        raise NamingError(f"unexpected module {name!r}")
    return int(m[1]), int(m[2])


def _resnet_module(mod: tuple[str, ...], scheme: str) -> str:
    if scheme == "swag":
        raise NamingError("SWAG released no ResNe(X)t; the paper's WSL weights use torchvision names")
    if mod == ("head",):
        return "fc"
    rest = mod[1:]  # below "trunk"
    if rest == ("stem_conv",):
        return "conv1"
    if rest == ("stem_bn",):
        return "bn1"
    stage, block = _block(rest[0])
    sub = {"downsample_conv": "downsample.0", "downsample_bn": "downsample.1"}.get(rest[1], rest[1])
    return f"layer{stage}.{block - 1}.{sub}"


_REGNET_STEM = {"torchvision": ("stem.0", "stem.1"), "timm": ("stem.conv", "stem.bn"),
                "swag": ("stem.stem.0", "stem.stem.1")}
_REGNET_HEAD = {"torchvision": "fc", "timm": "head.fc", "swag": "head.fc"}
_REGNET_BLOCK = {
    "torchvision": {"a": "f.a.0", "a_bn": "f.a.1", "b": "f.b.0", "b_bn": "f.b.1", "se/reduce": "f.se.fc1",
                    "se/expand": "f.se.fc2", "c": "f.c.0", "c_bn": "f.c.1", "proj": "proj.0", "proj_bn": "proj.1"},
    "timm": {"a": "conv1.conv", "a_bn": "conv1.bn", "b": "conv2.conv", "b_bn": "conv2.bn", "se/reduce": "se.fc1",
             "se/expand": "se.fc2", "c": "conv3.conv", "c_bn": "conv3.bn", "proj": "downsample.conv",
             "proj_bn": "downsample.bn"},
    "swag": {"a": "f.a.0", "a_bn": "f.a.1", "b": "f.b.0", "b_bn": "f.b.1", "se/reduce": "f.se.excitation.0",
             "se/expand": "f.se.excitation.2", "c": "f.c", "c_bn": "f.final_bn", "proj": "proj", "proj_bn": "bn"},
}


def _regnet_module(mod: tuple[str, ...], scheme: str) -> str:
    if mod == ("head",):
        return _REGNET_HEAD[scheme]
    rest = mod[1:]
    if rest == ("stem_conv",):
        return _REGNET_STEM[scheme][0]
    if rest == ("stem_bn",):
        return _REGNET_STEM[scheme][1]
    stage, block = _block(rest[0])
    sub = _REGNET_BLOCK[scheme]["/".join(rest[1:])]
    if scheme == "timm":
        return f"s{stage}.b{block}.{sub}"
    return f"trunk_output.block{stage}.block{stage}-{block - 1}.{sub}"


_VIT_TOP = {
    # weaksup module or leaf (below "trunk") -> (torchvision, timm, swag)
    "conv_proj": ("conv_proj", "patch_embed.proj", "conv_proj"),
    "class_token": ("class_token", "cls_token", "class_token"),
    "pos_embedding": ("encoder.pos_embedding", "pos_embed", "encoder.pos_embedding"),
    "ln": ("encoder.ln", "norm", "encoder.ln"),
}
_VIT_HEAD = {"torchvision": "heads.head", "timm": "head", "swag": "head.layers.head"}
_VIT_BLOCK = {
    "torchvision": {"ln_1": "ln_1", "ln_2": "ln_2", "self_attention/in_proj": "self_attention.in_proj",
                    "self_attention/out_proj": "self_attention.out_proj", "mlp/linear_1": "mlp.0",
                    "mlp/linear_2": "mlp.3"},
    "timm": {"ln_1": "norm1", "ln_2": "norm2", "self_attention/in_proj": "attn.qkv",
             "self_attention/out_proj": "attn.proj", "mlp/linear_1": "mlp.fc1", "mlp/linear_2": "mlp.fc2"},
    "swag": {"ln_1": "ln_1", "ln_2": "ln_2", "self_attention/in_proj": "self_attention.in_proj",
             "self_attention/out_proj": "self_attention.out_proj", "mlp/linear_1": "mlp.linear_1",
             "mlp/linear_2": "mlp.linear_2"},
}


def _vit_module(mod: tuple[str, ...], scheme: str) -> str:
    if mod == ("head",):
        return _VIT_HEAD[scheme]
    rest = mod[1:]
    column = SCHEMES.index(scheme)
    if len(rest) == 1:
        return _VIT_TOP[rest[0]][column]
    m = _LAYER.match(rest[0])
    if not m:
        raise NamingError(f"unexpected module {'/'.join(mod)!r}")
    sub = _VIT_BLOCK[scheme]["/".join(rest[1:])]
    prefix = {"torchvision": "encoder.layers.encoder_layer_", "timm": "blocks.", "swag": "encoder.layers.layer_"}
    return f"{prefix[scheme]}{m[1]}.{sub}"


_LEAF = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var", "kernel": "weight"}


def _entry(family: type, scheme: str, collection: str, path: tuple[str, ...], ndim: int) -> Entry:
    mod, leaf = path[:-1], path[-1]
    if family is ViTConfig and leaf in ("class_token", "pos_embedding"):
        layout = "seq_first" if (leaf == "pos_embedding" and scheme == "swag") else "same"
        return Entry(_vit_module(path, scheme), collection, path, layout)
    if leaf not in _LEAF:
        raise NamingError(f"no torch name for leaf {'/'.join(path)!r}")
    if family is ResNetConfig:
        module = _resnet_module(mod, scheme)
    elif family is RegNetConfig:
        module = _regnet_module(mod, scheme)
    else:
        module = _vit_module(mod, scheme)
    layout = "same"
    if leaf == "kernel":
        layout = "conv" if ndim == 4 else "linear"
        if family is RegNetConfig and mod[-2:-1] == ("se",):
            layout = "linear_1x1"
    name = _LEAF[leaf]
    if module.endswith("self_attention.in_proj"):
        # torch.nn.MultiheadAttention keeps its fused projection as bare parameters.
        return Entry(f"{module}_{name}", collection, path, layout)
    return Entry(f"{module}.{name}", collection, path, layout)


def _leaves(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out = []
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out += _leaves(v, prefix + (k,))
        else:
            out.append((prefix + (k,), v))
    return out


def family_of(config: Any) -> type:
    """The family (config dataclass type) of a model config."""
    for family in (ResNetConfig, RegNetConfig, ViTConfig):
        if isinstance(config, family):
            return family
    raise NamingError(f"no torch names for a {type(config).__name__}")


def entries(model_config: Any, variables: Mapping[str, Any], scheme: str) -> list[Entry]:
    """Every leaf of `variables` ({params, batch_stats}; arrays or shapes) with its torch name.

    `model_config` is the model's architecture (`model.config`). Raises NamingError when the
    scheme has no names for the family.
    """
    if scheme not in SCHEMES:
        raise NamingError(f"unknown naming scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    family = family_of(model_config)
    out = []
    for collection in ("params", "batch_stats"):
        for path, leaf in _leaves(variables.get(collection, {})):
            out.append(_entry(family, scheme, collection, path, len(leaf.shape)))
    return out


def aliases(key: str, scheme: str) -> tuple[str, ...]:
    """Other spellings of `key` found in released files (torchvision's ViT MLP before 0.13)."""
    if scheme == "torchvision" and ".mlp." in key:
        return (re.sub(r"\.mlp\.0\.", ".mlp.linear_1.", key.replace(".mlp.3.", ".mlp.linear_2.")),)
    return ()


def batch_norm_modules(found: list[Entry]) -> list[str]:
    """Module prefixes of the batch norms among `found` (those with running statistics)."""
    return sorted({e.module for e in found if e.collection == "batch_stats"})
