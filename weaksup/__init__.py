"""weaksup: weakly supervised image pretraining on hashtags, in JAX/Flax.

The stages of Mahajan et al. (ECCV 2018), one module each:
  hashtags/        hashtag -> WordNet synset resolver and vocabularies (label space)
  corpus/          ArrayRecord post corpus, its sources, EmojiGram, de-duplication
  input_pipeline   grain pipelines: decode, augment, 1/k targets, resampling
  models/          ResNet / ResNeXt in Flax
  train            the jit-sharded pretraining loop, Orbax checkpoints
  evaluators/      linear probe, few-shot ridge, fine-tuning
"""

__version__ = "0.1.0"
