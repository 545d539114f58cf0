"""The Source protocol: anything that turns raw inputs into Posts for the corpus build.

A source splits its input into small, JSON-able *work units* (file paths, "start:stop"
index ranges) that the build distributes over workers, and reads each unit into a stream
of `Post`s and `Skip`s. A source never raises on a bad item: it yields a `Skip` with a
short, stable reason key, and the build counts skips by reason into the manifest.

Sources are plug-ins named by module path in `SOURCES` and imported only when used.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator
from typing import Any, NamedTuple, Protocol, runtime_checkable

from weaksup.corpus.record import Post


class Skip(NamedTuple):
    """An item a source could not turn into a Post."""

    reason: str  # short stable key, e.g. "corrupt_image", "no_hashtags", "duplicate_id"
    item: str  # file path / member name / id that names it
    detail: str = ""


@runtime_checkable
class Source(Protocol):
    """Raw inputs -> Posts, split into work units the pipeline distributes."""

    name: str

    def work_units(self) -> list[str]:
        """Small JSON-able units (file paths, "start:stop" ranges), in a stable order."""
        ...

    def read(self, unit: str) -> Iterator[Post | Skip]:
        """Posts and Skips of one unit; never raises on a bad item."""
        ...


# name -> "module:attribute". Imported lazily so that e.g. the EmojiGram generator's
# font loading is never paid for by a webdataset build.
SOURCES: dict[str, str] = {
    "instaloader": "weaksup.corpus.sources.instaloader:InstaloaderSource",
    "webdataset": "weaksup.corpus.sources.webdataset:WebDatasetSource",
    "jsonl": "weaksup.corpus.sources.manifest_files:JsonlSource",
    "csv": "weaksup.corpus.sources.manifest_files:CsvSource",
    "yfcc": "weaksup.corpus.sources.yfcc:YfccSource",
    "emojigram": "weaksup.corpus.emojigram:EmojiGramSource",
}


class SourceError(ValueError):
    """An unknown source, a bad option or an unusable input path."""


def get_source(name: str, input: str | None = None, **options: Any) -> Source:
    """Instantiates source `name` on `input` with source-specific keyword options.

    Sources are constructed as `cls(input, **options)`, so a source class takes the input
    path as its first positional parameter (`None` for sources that need none, such as
    emojigram) and its options as keywords. Unknown options raise SourceError.
    """
    if name not in SOURCES:
        raise SourceError(f"unknown source {name!r}; known: {', '.join(sorted(SOURCES))}")
    module_name, _, attr = SOURCES[name].partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise SourceError(f"source {name!r} ({SOURCES[name]}) is not available: {e}") from e
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        params = sig.parameters
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        if not accepts_any:
            unknown = sorted(k for k in options if k not in params)
            if unknown:
                known = sorted(k for k in params if k != "input")
                raise SourceError(
                    f"source {name!r} has no option(s) {', '.join(unknown)}; "
                    f"options: {', '.join(known) or '(none)'}"
                )
        try:
            sig.bind(input, **options)
        except TypeError as e:
            raise SourceError(f"source {name!r}: bad options {options!r}: {e}") from e
    return cls(input, **options)
