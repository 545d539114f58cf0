"""`emojigram_target`: single emoji drawn by a held-out artist, labelled by WordNet synset.

The transfer target of the EmojiGram experiment: pretrain on posts drawn by some artists
(`weaksup.corpus.emojigram`), then probe or fine-tune on this dataset, drawn by an artist
the model never saw (EmojiOne by default; see `assets.DEFAULT_HELDOUT_ARTIST` for why).

Classes: every concept the held-out artist draws whose CLDR name resolves, through the
project's hashtag resolver (the name alone), to a WordNet noun synset; concepts
on the same synset merge into one class (names and wnids in `info.metadata["classes"]`).
Splits train / validation / test hold `*_per_class` renderings per class, each a single
emoji composed like a post (scale, position, rotation, flip, colour jitter, background,
occasional occlusion), with seeds that differ per split, class and example. Merged
concepts take turns.

Built without TensorFlow into array_record files under `weaksup.paths.tfds_data_dir()`:

    python -m weaksup.datasets.emojigram_target [--data-dir DIR] [--heldout-artist emojione]
        [--image-size 64] [--train-per-class 30] [--validation-per-class 10]
        [--test-per-class 20] [--seed 0] [--max-classes N]

then opened by name:

    import tensorflow_datasets as tfds
    ds = tfds.data_source("emojigram_target/emojione_64", split="train", data_dir=DIR)
    ds[0]  # {"image": uint8 (64, 64, 3), "label": int, "wnid": b"n...", "concept": ..., "artist": ...}

Configs are named `<artist>_<size>`; non-default counts, seed or class cap add a short
hash of the settings to the name, so two different builds never share a directory.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from weaksup import console, paths
from weaksup.corpus.emojigram import assets, concepts, render
from weaksup.hashtags.resolver import Resolver

log = logging.getLogger(__name__)

NAME = "emojigram_target"
SPLITS: tuple[str, ...] = ("train", "validation", "test")
_SPLIT_SALT = {"train": 1, "validation": 2, "test": 3}

# Evaluation images are composed like posts, but occluded less often: the target should
# measure recognising the concept, not guessing under a patch.
TARGET_AUGMENT = render.Augment(occlude_prob=0.1)


@dataclasses.dataclass(frozen=True)
class TargetClass:
    """One label: a WordNet noun synset and the concepts that merged into it."""

    synset: str
    wnid: str
    concepts: tuple[str, ...]


def target_classes(
    heldout_artist: str = assets.DEFAULT_HELDOUT_ARTIST, resolver: Any = None
) -> list[TargetClass]:
    """The label space: concepts the artist draws whose name resolves to a noun synset.

    `resolver` defaults to `weaksup.hashtags.resolver.Resolver()`. Classes are ordered by
    wnid; concepts within a class keep emoji-test.txt order.
    """
    if resolver is None:
        resolver = Resolver()
    by_synset: dict[str, list[str]] = {}
    wnids: dict[str, str] = {}
    for c in concepts.load_concepts():
        if heldout_artist not in c.artists:
            continue
        # The name alone: CLDR keywords are associations, not a post's other tags ("goat" is
        # tagged capricorn and zodiac, "crab" cancer), and as context they pulled animals onto
        # zodiac signs. Of the 826 concepts, 50 change against keyword context, most of them
        # to the synset the picture shows (crab, fish, goat, lion, sun, taco, ghost).
        res = resolver.resolve(c.name)
        if res is None or ".n." not in res.synset:
            continue
        by_synset.setdefault(res.synset, []).append(c.id)
        wnids[res.synset] = res.wnid
    classes = [TargetClass(s, wnids[s], tuple(ids)) for s, ids in by_synset.items()]
    return sorted(classes, key=lambda t: t.wnid)


@dataclasses.dataclass
class EmojigramTargetConfig(tfds.core.BuilderConfig):
    """Which artist, at what size, how many renderings per class and split."""

    heldout_artist: str = assets.DEFAULT_HELDOUT_ARTIST
    image_size: int = 64
    train_per_class: int = 30
    validation_per_class: int = 10
    test_per_class: int = 20
    seed: int = 0
    max_classes: int = 0  # 0 = all; a cap (first classes by wnid) for quick builds
    jpeg_quality: int = 95

    def per_class(self, split: str) -> int:
        return {
            "train": self.train_per_class,
            "validation": self.validation_per_class,
            "test": self.test_per_class,
        }[split]


_DEFAULTS = EmojigramTargetConfig(name="defaults")


def config_for(
    heldout_artist: str = assets.DEFAULT_HELDOUT_ARTIST, image_size: int = 64, **settings: int
) -> EmojigramTargetConfig:
    """A config named `<artist>_<size>` (plus a settings hash when they are not defaults)."""
    (artist,) = assets.artist_names([heldout_artist])
    name = f"{artist}_{int(image_size)}"
    extra = {k: int(v) for k, v in settings.items() if int(v) != getattr(_DEFAULTS, k)}
    if extra:
        digest = hashlib.sha1(json.dumps(extra, sort_keys=True).encode()).hexdigest()[:8]
        name = f"{name}_{digest}"
    return EmojigramTargetConfig(
        name=name,
        description=f"single emoji drawn by {artist} at {image_size} px; settings {extra or 'default'}",
        heldout_artist=artist,
        image_size=int(image_size),
        **{k: int(v) for k, v in settings.items()},
    )


# Under `python -m`, this file runs a second time as __main__ after the package import
# registered the builder; that copy must not register again (and is not used, see below).
class EmojigramTarget(tfds.core.GeneratorBasedBuilder, skip_registration=__name__ == "__main__"):
    """EmojiGram held-out-artist target (see module docstring)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = [config_for(a) for a in (assets.DEFAULT_HELDOUT_ARTIST, "noto", "symbola")]

    def __init__(self, *, resolver: Any = None, **kwargs: Any) -> None:
        self._resolver = resolver
        self._classes: list[TargetClass] | None = None
        super().__init__(**kwargs)

    @property
    def classes(self) -> list[TargetClass]:
        """The label space (resolved on first use; needs WordNet and the resolver)."""
        if self._classes is None:
            cfg: EmojigramTargetConfig = self.builder_config  # type: ignore[assignment]
            classes = target_classes(cfg.heldout_artist, self._resolver)
            if cfg.max_classes:
                classes = classes[: cfg.max_classes]
            if not classes:
                raise ValueError(f"{NAME}: no concept drawn by {cfg.heldout_artist} resolves")
            self._classes = classes
        return self._classes

    def _info(self) -> tfds.core.DatasetInfo:
        cfg: EmojigramTargetConfig = self.builder_config  # type: ignore[assignment]
        size = cfg.image_size
        if self.data_path.exists() and (self.data_path / "label.labels.txt").exists():
            names = (self.data_path / "label.labels.txt").read_text().split()
            metadata = tfds.core.MetadataDict()
        else:
            names = [c.synset for c in self.classes]
            metadata = tfds.core.MetadataDict(
                classes=[dataclasses.asdict(c) for c in self.classes],
                resolver=self._fingerprint(),
                settings=dataclasses.asdict(cfg) | {"release_notes": None},
            )
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__.split("\n\n")[0],
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(size, size, 3), encoding_format="jpeg"),
                    "label": tfds.features.ClassLabel(names=names),
                    "wnid": tfds.features.Text(),
                    "concept": tfds.features.Text(),
                    "artist": tfds.features.Text(),
                }
            ),
            supervised_keys=("image", "label"),
            metadata=metadata,
        )

    def _fingerprint(self) -> str:
        resolver = self._resolver
        if resolver is None:
            resolver = self._resolver = Resolver()
        return str(resolver.fingerprint()) if hasattr(resolver, "fingerprint") else ""

    def _split_generators(self, dl_manager: Any) -> dict[str, Iterator[tuple[str, dict]]]:
        return {split: self._generate_examples(split) for split in SPLITS}

    def _generate_examples(self, split: str) -> Iterator[tuple[str, dict]]:
        cfg: EmojigramTargetConfig = self.builder_config  # type: ignore[assignment]
        by_id = concepts.concepts_by_id()
        for label, cls in enumerate(self.classes):
            for j in range(cfg.per_class(split)):
                concept = by_id[cls.concepts[j % len(cls.concepts)]]
                rng = np.random.default_rng([cfg.seed, 0x7A46, _SPLIT_SALT[split], label, j])
                image = render.render_glyphs(
                    cfg.heldout_artist, [concept.emoji], rng, cfg.image_size, TARGET_AUGMENT
                )
                yield f"{label}-{j}", {
                    "image": render.encode(image, "jpeg", cfg.jpeg_quality),
                    "label": label,
                    "wnid": cls.wnid,
                    "concept": concept.id,
                    "artist": cfg.heldout_artist,
                }


def build_target(
    data_dir: str | Path | None = None,
    heldout_artist: str = assets.DEFAULT_HELDOUT_ARTIST,
    image_size: int = 64,
    *,
    train_per_class: int = 30,
    validation_per_class: int = 10,
    test_per_class: int = 20,
    seed: int = 0,
    max_classes: int = 0,
    resolver: Any = None,
) -> EmojigramTarget:
    """Builds (or finds already built) the target and returns its prepared builder.

    Open it with `builder.as_data_source()` or
    `tfds.data_source(f"emojigram_target/{builder.builder_config.name}", ...)`.
    """
    cfg = config_for(
        heldout_artist,
        image_size,
        train_per_class=train_per_class,
        validation_per_class=validation_per_class,
        test_per_class=test_per_class,
        seed=seed,
        max_classes=max_classes,
    )
    data_dir = Path(data_dir) if data_dir is not None else paths.tfds_data_dir()
    # tfds accepts a predefined config only by name
    config = cfg.name if cfg.name in EmojigramTarget.builder_configs else cfg

    def make() -> EmojigramTarget:
        return EmojigramTarget(
            config=config, data_dir=str(data_dir), file_format="array_record", resolver=resolver
        )

    builder = make()
    if builder.is_prepared():
        # The labels come from the resolver: a build made with other resolver settings or
        # another WordNet is stale, and is replaced rather than silently reused.
        built_with = builder.info.metadata.get("resolver") if builder.info.metadata else None
        current = builder._fingerprint()
        if built_with != current:
            log.warning(f"{NAME}: {builder.data_path} was built with resolver {built_with}, "
                        f"now {current}; rebuilding")
            shutil.rmtree(builder.data_path)
            resolver = builder._resolver
            builder = make()
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
    return builder


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m weaksup.datasets.emojigram_target`: build the target dataset."""
    console.ensure_setup()  # status lines are log records: shown unless -q
    p = argparse.ArgumentParser(prog="python -m weaksup.datasets.emojigram_target", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None, help=f"TFDS data_dir (default {paths.tfds_data_dir()})")
    p.add_argument("--heldout-artist", default=assets.DEFAULT_HELDOUT_ARTIST, choices=assets.ARTISTS)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--train-per-class", type=int, default=30)
    p.add_argument("--validation-per-class", type=int, default=10)
    p.add_argument("--test-per-class", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-classes", type=int, default=0, help="0 = all classes")
    args = p.parse_args(argv)
    builder = build_target(
        args.data_dir,
        args.heldout_artist,
        args.image_size,
        train_per_class=args.train_per_class,
        validation_per_class=args.validation_per_class,
        test_per_class=args.test_per_class,
        seed=args.seed,
        max_classes=args.max_classes,
    )
    info = builder.info
    summary = {
        "name": f"{NAME}/{builder.builder_config.name}",
        "data_dir": str(builder.data_dir),
        "classes": info.features["label"].num_classes,
        "splits": {s: info.splits[s].num_examples for s in SPLITS},
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    # Run as the package module, so TFDS registers the builder under its package name, not __main__.
    from weaksup.datasets.emojigram_target import main as _registered_main

    sys.exit(_registered_main())
