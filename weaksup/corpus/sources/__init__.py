"""Corpus sources: readers of the formats people really have (see `base`)."""

from weaksup.corpus.sources.base import SOURCES, Skip, Source, SourceError, get_source

__all__ = ["SOURCES", "Skip", "Source", "SourceError", "get_source"]
