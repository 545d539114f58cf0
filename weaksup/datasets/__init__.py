"""TFDS builders for local evaluation targets.

Importing this package registers the builders with TFDS (`tfds.builder(name)` finds them);
a prepared dataset also opens by name without importing it, from its files.

  emojigram_target  single emoji by a held-out artist, labelled by WordNet synset
"""

from weaksup.datasets.emojigram_target import EmojigramTarget, build_target

__all__ = ["EmojigramTarget", "build_target"]
