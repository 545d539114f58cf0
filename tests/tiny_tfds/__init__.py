"""A tiny real TFDS dataset (array_record, built without TensorFlow) for evaluation tests."""

from __future__ import annotations

import io

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

NAME = "tiny_shapes"
SIZES = {"train": 12, "test": 11}


def grey_of(label: int) -> int:
    """Label k is a flat picture of grey 40 + 80 k, so the label is readable from pixels."""
    return 40 + 80 * label


def _examples(n: int):
    for i in range(n):
        label = i % 3
        img = np.full((30 + i, 40, 3), grey_of(label), np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=95)
        yield {"image": buf.getvalue(), "label": label, "index": i}


class TinyShapes(tfds.core.GeneratorBasedBuilder):
    """Flat grey pictures of varying height, three classes."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
                    "label": tfds.features.ClassLabel(num_classes=3),
                    "index": np.int64,
                }
            ),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        return {split: self._generate_examples(n) for split, n in SIZES.items()}

    def _generate_examples(self, n):
        for i, ex in enumerate(_examples(n)):
            yield i, ex


def build(data_dir) -> str:
    """Builds the dataset under `data_dir`; returns its TFDS name."""
    TinyShapes(data_dir=str(data_dir), file_format="array_record").download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
    return NAME
