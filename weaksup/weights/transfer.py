"""Weights in and out of weaksup runs: import a PyTorch state dict as a run, export a run.

`import_weights` turns a torchvision / timm / SWAG state dict into a weaksup run folder:
a real Orbax checkpoint (step 0: {params, batch_stats}, the config and the vocabulary
items that `checkpoint.load_pretrained` reads), `config.json` as a trained run has, and
`weights_import.json` recording where the weights came from. `evaluate` (config
`pretrained.workdir`) and `predict --workdir` then take the folder like any run's.

The head's classes come from the vocabulary (`vocab`, a `vocab build` JSON); a 1000-class
head without one is ImageNet-1k in torchvision's class order (sorted wnids, which is
tensorflow-datasets' order too), its labels named from WordNet. A file without a head (a
trunk-only release, e.g. SWAG's pretrained trunks) needs `vocab`, and the head starts as
the model's own initialisation. ViT position embeddings are taken at the file's
resolution, or resampled bicubically (as SWAG's loader does) to `image_size`.

`export_weights` writes a run's trunk and head as `model.safetensors` under torchvision
(or timm) names, loadable with `load_state_dict(strict=True)` into the matching torch
module, plus `vocab.json`, `model_card.json` and `MODEL_CARD.md`. Every file is written
atomically, the card last.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from weaksup import atomic, models, train_lib
from weaksup import checkpoint as ckpt_lib
from weaksup import config as config_lib
from weaksup.errors import UsageError
from weaksup.hashtags.imagenet import ImageNetLabelsError, imagenet1k_wnids
from weaksup.hashtags.vocabulary import Vocabulary
from weaksup.models import RegNetConfig, ResNetConfig, ViTConfig
from weaksup.models.vit import resize_posemb
from weaksup.weights import files, names
from weaksup.weights.names import Entry
from weaksup.wordnet import load_index

IMPORT_RECORD = "weights_import.json"
WEIGHTS_FILE = "model.safetensors"
VOCAB_FILE = "vocab.json"
CARD_JSON = "model_card.json"
CARD_MD = "MODEL_CARD.md"
CARD_FORMAT = "weaksup-model-card"
IMPORT_STEP = 0
# How many keys an error message names before it counts the rest.
SHOW = 3

_FAMILY_NAMES = {ResNetConfig: "ResNet/ResNeXt", RegNetConfig: "RegNetY", ViTConfig: "ViT"}


class WeightsError(UsageError, ValueError):
    """A state dict that does not fit the chosen model, or a run that cannot be imported/exported."""


@dataclasses.dataclass
class ImportReport:
    """What `import_weights` did."""

    workdir: str
    model: str
    source: str
    scheme: str
    image_size: int
    num_classes: int
    head: str  # "from the file" | "initialised"
    vocabulary: str
    tensors: int
    parameters: int
    unused: list[str]


@dataclasses.dataclass
class ExportReport:
    """What `export_weights` wrote."""

    output: str
    model: str
    step: int
    scheme: str
    tensors: int
    parameters: int
    num_classes: int
    files: list[str]


# ----------------------------------------------------------------------------------------
# Shared pieces.
# ----------------------------------------------------------------------------------------


def default_image_size(config: Any) -> int:
    """The nominal resolution of an architecture: its own field, else 224 for ImageNet stems, 32 otherwise."""
    size = getattr(config, "image_size", None)
    if size:
        return int(size)
    return 224 if getattr(config, "stem", "imagenet") == "imagenet" else 32


def _shapes(model: Any, image_size: int) -> dict[str, Any]:
    def init(rng):
        v = model.init(rng, jnp.zeros((1, image_size, image_size, 3), jnp.float32), train=False)
        return {"params": v["params"], "batch_stats": v.get("batch_stats", {})}

    return jax.eval_shape(init, jax.random.PRNGKey(0))


def _get(tree: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    for p in path:
        tree = tree[p]
    return tree


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for p in path[:-1]:
        tree = tree.setdefault(p, {})
    tree[path[-1]] = value


def _sample(keys: list[str]) -> str:
    more = f" and {len(keys) - SHOW} more" if len(keys) > SHOW else ""
    return ", ".join(keys[:SHOW]) + more


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def imagenet1k_vocabulary() -> Vocabulary:
    """ImageNet-1k as a vocabulary in torchvision's class order, labels named from WordNet 3.0."""
    try:
        wnids = imagenet1k_wnids()
    except ImageNetLabelsError as e:
        raise WeightsError(str(e)) from None
    index = load_index()
    synsets = [index.synset(w) for w in wnids]
    position = {s.name: i for i, s in enumerate(synsets)}
    return Vocabulary(
        wnids=wnids,
        names=[s.name for s in synsets],
        # No hashtag counts: a uniform prior, so --prior-correction changes nothing.
        frequencies=[1] * len(wnids),
        hashtags=[{} for _ in wnids],
        hypernyms=[sorted(position[h] for h in s.hypernyms if h in position) for s in synsets],
        build={"mode": "imagenet1k", "source": "ImageNet-1k class order (torchvision's, sorted wnids)"},
    )


# ----------------------------------------------------------------------------------------
# Import.
# ----------------------------------------------------------------------------------------


def _lookup(state: Mapping[str, np.ndarray], entry: Entry, scheme: str) -> str | None:
    for key in (entry.key, *names.aliases(entry.key, scheme)):
        if key in state:
            return key
    return None


def detect_scheme(state: Mapping[str, np.ndarray], model_config: Any, shapes: Mapping[str, Any],
                  model_name: str = "this model") -> str:
    """The naming scheme under which most of the model's tensors are found in `state`."""
    found: dict[str, int] = {}
    for scheme in names.SCHEMES:
        try:
            ents = names.entries(model_config, shapes, scheme)
        except names.NamingError:
            continue
        found[scheme] = sum(_lookup(state, e, scheme) is not None for e in ents)
    best = max(found, key=lambda s: found[s])
    if not found[best]:
        raise WeightsError(f"none of the file's {len(state)} keys (e.g. {_sample(sorted(state))}) is a "
                           f"{' / '.join(found)} name of {model_name}")
    return best


def _vit_grid(array: np.ndarray, layout: str) -> int | None:
    """Patches per side of a (torch-layout) class-token-first position embedding, if square."""
    if array.ndim != 3:
        return None
    seq = names.from_torch(np.broadcast_to(np.zeros((), np.float32), array.shape), layout).shape[1] - 1
    side = math.isqrt(max(seq, 0))
    return side if side * side == seq and side > 0 else None


def _choose_vocabulary(head_key: str | None, state: Mapping[str, np.ndarray], vocab_path: str | None,
                       source: Path) -> tuple[Vocabulary, str]:
    file_classes = int(state[head_key].shape[0]) if head_key else None
    if vocab_path:
        vocab = Vocabulary.load(vocab_path)
        if file_classes is not None and file_classes != vocab.num_classes:
            raise WeightsError(f"{source}: {head_key} has {file_classes} classes {tuple(state[head_key].shape)}, "
                               f"but vocabulary {vocab_path} has {vocab.num_classes}")
        return vocab, str(Path(vocab_path).resolve())
    if file_classes is None:
        raise WeightsError(f"{source}: no classifier head in the file; pass --vocab FILE for the head's classes "
                           "(it starts from the model's initialisation)")
    if file_classes == 1000:
        return imagenet1k_vocabulary(), "ImageNet-1k (torchvision class order)"
    raise WeightsError(f"{source}: {head_key} has {file_classes} classes; pass --vocab FILE with "
                       f"{file_classes} labels in the head's order")


def import_weights(model_name: str, source: str | os.PathLike, workdir: str | os.PathLike, *,
                   vocab_path: str | None = None, image_size: int | None = None,
                   scheme: str | None = None) -> ImportReport:
    """Writes a weaksup run at `workdir` holding the state dict of `source` as model `model_name`.

    `scheme` (torchvision | timm | swag) defaults to the one under which most tensors are
    found. Raises WeightsError (a UsageError) for tensors whose shapes do not fit (naming
    the first keys and both shapes), trunk tensors missing from the file, or a head whose
    classes do not match the vocabulary.
    """
    source, workdir = Path(source), Path(workdir)
    directory = ckpt_lib.checkpoint_dir(workdir)
    if directory.is_dir():
        existing = ckpt_lib.Checkpointer(directory, read_only=True)
        steps = existing.all_steps()
        existing.close()
        if steps:
            raise WeightsError(f"{workdir}: already holds checkpoints; import into a new folder")
    try:
        probe = models.get_model(model_name, 1)
    except ValueError as e:
        raise WeightsError(str(e)) from None
    state = files.read_state_dict(source)
    arch = probe.config
    size = int(image_size) if image_size else default_image_size(arch)
    probe_shapes = _shapes(probe, size)
    if scheme is None:
        scheme = detect_scheme(state, arch, probe_shapes, model_name)
    try:
        probe_entries = names.entries(arch, probe_shapes, scheme)
    except names.NamingError as e:
        raise WeightsError(f"--names {scheme}: {e}") from None

    head_weight = next(e for e in probe_entries if e.is_head and e.path[-1] == "kernel")
    head_key = _lookup(state, head_weight, scheme)
    vocab, vocab_source = _choose_vocabulary(head_key, state, vocab_path, source)

    if isinstance(arch, ViTConfig) and image_size is None:
        pos = next(e for e in probe_entries if e.path[-1] == "pos_embedding")
        pos_key = _lookup(state, pos, scheme)
        grid = _vit_grid(state[pos_key], pos.layout) if pos_key else None
        if grid:
            size = grid * arch.patch_size

    model = models.get_model(model_name, vocab.num_classes)
    shapes = _shapes(model, size)
    ents = names.entries(model.config, shapes, scheme)
    tree: dict[str, Any] = {"params": {}, "batch_stats": {}}
    consumed: set[str] = set()
    order = {key: i for i, key in enumerate(state)}
    mismatched: list[tuple[int, str]] = []  # (position in the file, message): reported in file order
    missing: list[Entry] = []
    for e in ents:
        expected = _get(shapes[e.collection], e.path)
        key = _lookup(state, e, scheme)
        if key is None:
            missing.append(e)
            continue
        consumed.add(key)
        try:
            value = names.from_torch(state[key], e.layout)
        except ValueError:
            value = None
        if value is not None and e.path[-1] == "pos_embedding" and value.shape != expected.shape:
            value = _resized_posemb(value, expected.shape, model.config)
        if value is None or value.shape != expected.shape:
            want = names.torch_shape(expected.shape, e.layout)
            mismatched.append((order[key], f"{key}: file {tuple(state[key].shape)}, {model_name} expects {want}"))
            continue
        _set(tree[e.collection], e.path, np.asarray(value, dtype=expected.dtype))
    for module in names.batch_norm_modules(ents):
        consumed.add(f"{module}.{names.NUM_BATCHES_TRACKED}")
    unused = sorted(set(state) - consumed)
    # A head is taken whole from the file or started whole; half a head is an error.
    trunk_missing = [e.key for e in missing if not e.is_head or head_key is not None]
    if mismatched:
        shown = [message for _, message in sorted(mismatched)[:SHOW]]
        raise WeightsError(f"{source}: {len(mismatched)} tensor(s) do not fit {model_name} ({scheme} names): "
                           + "; ".join(shown) + (f"; and {len(mismatched) - SHOW} more"
                                                 if len(mismatched) > SHOW else ""))
    if trunk_missing:
        raise WeightsError(f"{source}: {len(trunk_missing)} tensor(s) of {model_name} missing ({scheme} names): "
                           f"{_sample(trunk_missing)}" + (f"; unused keys in the file: {_sample(unused)}"
                                                          if unused else ""))

    head = "from the file"
    if missing:  # the head only: start it with the model's own initialisers
        features = jnp.zeros((1, model.config.feature_dim), jnp.float32)
        fresh = model.init(jax.random.PRNGKey(0), features, method=lambda m, f: m.head(f))
        tree["params"]["head"] = jax.device_get(fresh["params"]["head"])
        head = "initialised"

    config = config_lib.pretrain_config()
    config.model.name = model_name
    config.input.image_size = size
    config_json = config_lib.config_to_json(config)
    ckpt = ckpt_lib.Checkpointer(directory, async_save=False)
    try:
        # Host (numpy) arrays: Orbax writes them without compiling a transfer per array, and
        # `load_pretrained` restores them onto any mesh like a trained run's.
        ckpt.save(IMPORT_STEP, tree, config=config_json, vocab=vocab.to_json())
    finally:
        ckpt.close()
    atomic.write_json(workdir / "config.json", config_json, sort_keys=True)
    report = ImportReport(
        workdir=str(workdir.resolve()), model=model_name, source=str(source.resolve()), scheme=scheme,
        image_size=size, num_classes=vocab.num_classes, head=head, vocabulary=vocab_source,
        tensors=len(ents), parameters=int(sum(np.prod(x.shape) for x in jax.tree.leaves(shapes["params"]))),
        unused=unused,
    )
    atomic.write_json(workdir / IMPORT_RECORD, {**dataclasses.asdict(report), "sha256": _sha256(source)})
    return report


def _resized_posemb(value: np.ndarray, want: tuple[int, ...], config: ViTConfig) -> np.ndarray | None:
    """A class-token-first (1, S, D) embedding resampled to the grid of `want`, if both are square."""
    if len(want) != 3 or value.ndim != 3 or value.shape[2] != want[2] or value.shape[0] != 1:
        return None
    new = math.isqrt(want[1] - 1)
    if new * new != want[1] - 1 or _vit_grid(value, "same") is None:
        return None
    return np.asarray(resize_posemb(jnp.asarray(value), new, layout=config.posemb))


# ----------------------------------------------------------------------------------------
# Export.
# ----------------------------------------------------------------------------------------


def export_tensors(model_config: Any, variables: Mapping[str, Any], scheme: str, step: int = 0
                   ) -> dict[str, np.ndarray]:
    """The torch state dict (float32, plus BN num_batches_tracked = `step`) of weaksup `variables`."""
    try:
        ents = names.entries(model_config, variables, scheme)
    except names.NamingError as e:
        raise WeightsError(f"--names {scheme}: {e}") from None
    out: dict[str, np.ndarray] = {}
    for e in ents:
        value = np.asarray(_get(variables[e.collection], e.path))
        if np.issubdtype(value.dtype, np.floating) or value.dtype == jnp.bfloat16:
            value = value.astype(np.float32)
        if e.path[-1] == "pos_embedding" and getattr(model_config, "posemb", "swag") == "big_vision":
            # big_vision adds no position to the class token: torch's layout has a slot
            # for it, and a zero there computes exactly the same.
            value = np.concatenate([np.zeros_like(value[:, :1]), value], axis=1)
        out[e.key] = names.to_torch(value, e.layout)
    for module in names.batch_norm_modules(ents):
        out[f"{module}.{names.NUM_BATCHES_TRACKED}"] = np.asarray(step, np.int64)
    return out


def _training_summary(config: Any, workdir: Path) -> dict[str, Any]:
    record = workdir / IMPORT_RECORD
    if record.is_file():  # trained elsewhere: the config holds defaults, not a recipe
        imported = json.loads(record.read_text())
        return {"imported_from": {k: imported.get(k) for k in ("source", "sha256", "scheme", "head", "vocabulary")}}
    summary: dict[str, Any] = {"loss": config.get("loss"), "optimizer": config.optim.get("name"),
                               "global_batch_size": config.input.get("global_batch_size")}
    for key in ("total_steps", "total_epochs", "total_examples"):
        if config.get(key) is not None:
            summary[key] = config.get(key)
    corpus_dir = config.get("corpus_dir") or ""
    if corpus_dir:
        summary["corpus_dir"] = corpus_dir
        manifest_path = Path(corpus_dir) / "manifest.json"
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, json.JSONDecodeError):
            summary["corpus"] = "manifest not readable here"
        else:
            build = manifest.get("build", {})
            summary["corpus"] = {"records": manifest.get("records"), "source": build.get("source"),
                                 "skipped": manifest.get("skipped"), "hashtags": manifest.get("hashtags")}
    return summary


def _card_markdown(card: Mapping[str, Any]) -> str:
    arch, pre, vocab, training = card["architecture"], card["preprocessing"], card["vocabulary"], card["training"]
    lines = [
        f"# {arch['model']} ({arch['family']}), weaksup run step {card['step']}",
        "",
        (f"Weights: `{card['weights']['file']}` ({card['weights']['tensors']} tensors, {arch['parameters']:,} "
         f"parameters, {card['weights']['names']} names; sha256 {card['weights']['sha256'][:16]}...)."),
        f"Load into the matching {card['weights']['names']} module with `load_state_dict(strict=True)`.",
        "",
        "## Input",
        "",
        f"RGB pictures at {pre['resolution']}x{pre['resolution']} px, values scaled to [0, 1], then normalised",
        f"per channel with mean {pre['mean']} and std {pre['std']}; PyTorch layout NCHW.",
        "",
        "## Output",
        "",
        f"Logits over {vocab['num_classes']} labels (`{vocab['file']}`: wnids, synset names and the hashtags",
        f"merged into each, in the head's order; vocabulary mode {vocab.get('mode')!r}); apply a softmax",
        "for label probabilities.",
        "",
        "## Training data",
        "",
        "```json",
        json.dumps(training, indent=1, default=str),
        "```",
        "",
        f"Source run: `{card['source_run']}`.",
        "",
    ]
    return "\n".join(lines)


def export_weights(workdir: str | os.PathLike, output: str | os.PathLike, *, step: int | None = None,
                   scheme: str = "torchvision") -> ExportReport:
    """Writes a run's weights (`model.safetensors`), vocabulary and model card into `output`."""
    if scheme not in names.EXPORT_SCHEMES:
        raise WeightsError(f"--names must be one of {', '.join(names.EXPORT_SCHEMES)}, got {scheme!r}")
    workdir, output = Path(workdir), Path(output)
    if step is None:
        directory = ckpt_lib.checkpoint_dir(workdir)
        if directory.is_dir():
            ckpt = ckpt_lib.Checkpointer(directory, read_only=True)
            step = ckpt.latest_step()
            ckpt.close()
    config, vocab, model, variables = ckpt_lib.load_pretrained(workdir, step=step)
    step = int(step or 0)
    host = jax.device_get(variables)
    tensors = export_tensors(model.config, host, scheme, step)
    family = names.family_of(model.config)
    size = int(config.input.image_size)
    parameters = int(sum(np.prod(x.shape) for x in jax.tree.leaves(host["params"])))
    weights_path = output / WEIGHTS_FILE
    files.write_safetensors(weights_path, tensors, metadata={
        "format": "pt", "weaksup.model": str(config.model.name), "weaksup.names": scheme, "weaksup.step": str(step),
        "weaksup.num_classes": str(vocab.num_classes), "weaksup.image_size": str(size),
    })
    vocab.save(output / VOCAB_FILE)
    card = {
        "format": CARD_FORMAT,
        "format_version": 1,
        "step": step,
        "architecture": {"model": str(config.model.name), "family": _FAMILY_NAMES[family],
                         "overrides": dict(config.model.overrides), "config": dataclasses.asdict(model.config),
                         "parameters": parameters},
        "weights": {"file": WEIGHTS_FILE, "names": scheme, "tensors": len(tensors), "sha256": _sha256(weights_path)},
        "vocabulary": {"file": VOCAB_FILE, "num_classes": vocab.num_classes, "hash": vocab.hash,
                       "mode": vocab.build.get("mode")},
        "preprocessing": {"resolution": size, "mean": list(train_lib.MEAN_RGB), "std": list(train_lib.STDDEV_RGB),
                          "value_range": [0.0, 1.0], "layout": "NCHW"},
        "training": _training_summary(config, workdir),
        "source_run": str(workdir.resolve()),
    }
    atomic.write_json(output / CARD_JSON, card)
    atomic.write_text(output / CARD_MD, _card_markdown(card))
    return ExportReport(output=str(output.resolve()), model=str(config.model.name), step=step, scheme=scheme,
                        tensors=len(tensors), parameters=parameters, num_classes=vocab.num_classes,
                        files=[WEIGHTS_FILE, VOCAB_FILE, CARD_JSON, CARD_MD])
