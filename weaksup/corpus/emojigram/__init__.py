"""EmojiGram: the embedded default corpus, generated from real emoji artwork and annotations.

  assets    locate and render the three artists' artwork (Noto, EmojiOne, Symbola)
  concepts  the concept table (CLDR, emoji-test.txt, EmojiOne) and user-style hashtags
  render    composing an image: glyphs on varied backgrounds with augmentation
  source    EmojiGramSource, the corpus Source (`--source emojigram`)

The held-out-artist evaluation target is `weaksup.datasets.emojigram_target`.
"""

from weaksup.corpus.emojigram.source import EmojiGramSource

__all__ = ["EmojiGramSource"]
