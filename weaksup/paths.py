"""Where the project keeps its data: WordNet files, the compiled index, TFDS datasets.

One root, `data_dir()`, overridable with the WEAKSUP_DATA_DIR environment variable.
In a source checkout it defaults to `<repo>/data`; in an installed package to
`~/.cache/weaksup`.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "WEAKSUP_DATA_DIR"


def data_dir() -> Path:
    """The project data root (not created here)."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser().resolve()
    repo = Path(__file__).resolve().parent.parent
    if (repo / "setup.cfg").exists():
        return repo / "data"
    return Path.home() / ".cache" / "weaksup"


def nltk_data_dir() -> Path:
    """An NLTK data path root; WordNet lives in `corpora/wordnet` below it."""
    return data_dir() / "nltk_data"


def tfds_data_dir() -> Path:
    """TFDS `data_dir` for the datasets this project builds (e.g. the EmojiGram target)."""
    return data_dir() / "tensorflow_datasets"


def cache_dir() -> Path:
    """Derived, rebuildable artefacts (compiled WordNet index, feature caches)."""
    return data_dir() / "cache"
