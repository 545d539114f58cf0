"""The ImageNet-1k label set as WordNet 3.0 ids: the paper's target-aligned vocabulary (mode imagenet1k).

ImageNet's class ids are WordNet 3.0 noun offsets ("n02084071"), so the 1,000 classes are
a set of synsets; tensorflow-datasets ships the list in class order.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


class ImageNetLabelsError(ValueError):
    """The ImageNet-1k label file is missing or malformed in the installed tensorflow-datasets."""


def imagenet1k_wnids() -> list[str]:
    """The 1,000 ImageNet-1k wnids in class order, from the installed tensorflow-datasets."""
    spec = importlib.util.find_spec("tensorflow_datasets")
    if spec is None or not spec.submodule_search_locations:
        raise ImageNetLabelsError("tensorflow-datasets is not installed; it ships the ImageNet labels")
    root = Path(next(iter(spec.submodule_search_locations)))
    candidates = [
        root / "datasets" / "imagenet2012" / "labels.txt",
        root / "image_classification" / "imagenet2012_labels.txt",
    ]
    for path in candidates:
        if path.exists():
            wnids = [w.strip() for w in path.read_text().splitlines() if w.strip()]
            if len(wnids) != 1000 or len(set(wnids)) != 1000:
                raise ImageNetLabelsError(f"{path}: expected 1000 unique wnids, found {len(wnids)}")
            return wnids
    raise ImageNetLabelsError(
        "ImageNet-1k label file not found in tensorflow-datasets; looked in "
        + ", ".join(str(p) for p in candidates)
    )
