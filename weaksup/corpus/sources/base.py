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
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, NamedTuple, Protocol, runtime_checkable

from weaksup.corpus.confine import UnsafeFile, check_file, read_file
from weaksup.corpus.record import MAX_CAPTION_CHARS, Post, make_post
from weaksup.hashtags.extract import extract_hashtags
from weaksup.hashtags.text import LABEL_SOURCES, LABELLERS, get_labeller


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


# --- Shared post assembly: every source builds its posts through these helpers, so caps,
# caption decoding and hashtag extraction behave the same for all formats. ---

# Instagram allows 30 hashtags; anything far beyond is spam and is capped, not skipped.
DEFAULT_MAX_HASHTAGS = 100
MAX_HASHTAG_CHARS = 100


def decode_text(raw: bytes | str | None, fixes: list[str]) -> str | None:
    """Caption bytes -> str; invalid UTF-8 is replaced (and noted in `fixes`), not fatal."""
    if raw is None or isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        fixes.append("invalid_utf8")
        return raw.decode("utf-8", errors="replace")


def assemble_post(
    id: str,
    image: bytes,
    *,
    source: str,
    caption: str | None = None,
    hashtags: Sequence[str] | None = None,
    meta: Mapping[str, Any] | None = None,
    fixes: list[str] | None = None,
    max_hashtags: int = DEFAULT_MAX_HASHTAGS,
    nouns: bool = False,
    labels: str = "hashtags",
    labeller: str = "weaksup",
) -> Post | Skip:
    """Builds a Post from an image and a caption and/or explicit hashtags.

    Hashtags are `hashtags` when given, else those extracted from `caption`; with
    `nouns=True` a caption without hashtags contributes its caption labels instead.
    `labels` chooses the label source: "hashtags" (the above), "caption" (only the
    caption's labels), or "both" (hashtags, then caption labels). Caption labels come from
    `weaksup.hashtags.text` with `labeller`; their senses are listed in
    meta["caption_synsets"].
    Repeats are dropped and the list is capped at `max_hashtags`. Returns
    Skip("no_hashtags") when nothing is left. Normalisations are listed in meta["fixes"].
    """
    fixes = list(fixes or [])
    meta = dict(meta or {})
    if hashtags is None:
        if caption is None:
            return Skip("missing_caption", id, "no caption and no tags")
        tags = list(extract_hashtags(caption))
    else:
        tags = list(hashtags)
    fallback = labels == "hashtags" and nouns and hashtags is None and not tags
    if labels != "hashtags" or fallback:
        found = get_labeller(labeller).labels(caption) if caption else []
        terms = [label.term for label in found]
        tags = terms if labels == "caption" or fallback else tags + terms
        if terms or not fallback:
            meta["tags_from"] = "nouns" if fallback else labels
        if found:
            meta["caption_synsets"] = [label.synset for label in found]
    seen: set[str] = set()
    kept: list[str] = []
    for t in tags:
        t = t.strip().lstrip("#")
        if not t or t in seen:
            continue
        if len(t) > MAX_HASHTAG_CHARS:
            fixes.append("hashtag_too_long")
            continue
        seen.add(t)
        kept.append(t)
    if len(kept) > max_hashtags:
        fixes.append("hashtags_capped")
        meta["hashtags_dropped"] = len(kept) - max_hashtags
        kept = kept[:max_hashtags]
    if not kept:
        return Skip("no_hashtags", id)
    if caption is not None and len(caption) > MAX_CAPTION_CHARS:
        fixes.append("caption_truncated")
    if fixes:
        meta["fixes"] = sorted(set(fixes))
    return make_post(id, image, kept, caption=caption, source=source, meta=meta)


def check_label_options(source: str, labels: str, labeller: str) -> tuple[str, str]:
    """The `labels` and `labeller` source options, validated (SourceError names the bad one)."""
    if labels not in LABEL_SOURCES:
        raise SourceError(f"{source}: option labels={labels!r}; expected one of {', '.join(LABEL_SOURCES)}")
    if labeller not in LABELLERS:
        raise SourceError(f"{source}: option labeller={labeller!r}; expected one of {', '.join(LABELLERS)}")
    return labels, labeller


def safe_relative(path: str) -> bool:
    """True when `path` stays inside the directory it is relative to (no abs, no '..')."""
    if not path or "\x00" in path:
        return False
    p = PurePosixPath(path.replace("\\", "/"))
    return not p.is_absolute() and ".." not in p.parts and not PureWindowsPath(path).drive


def read_file_capped(path: str | os.PathLike[str], limit: int, root: str | os.PathLike[str] | None = None) -> bytes:
    """Reads a whole regular file, refusing (ValueError) files larger than `limit` bytes.

    With `root`, a path whose real location is outside it raises UnsafeFile("unsafe_path");
    anything but a regular file raises UnsafeFile("not_a_file") without being opened
    (`weaksup.corpus.confine`). Sources turn an UnsafeFile into `unsafe_skip`.
    """
    return read_file(path, limit, root)


def unsafe_skip(error: UnsafeFile, item: str) -> Skip:
    """The Skip of a path `confine` refused: reason unsafe_path or not_a_file, counted, never opened."""
    return Skip(error.reason, item[:500], error.detail[:300])


def refused(path: str | os.PathLike[str], root: str | os.PathLike[str] | None, item: str) -> Skip | None:
    """The Skip of an input file that must not be read (unsafe_path, not_a_file, unreadable_file), else None.

    For a source's own input files (manifests, metadata, archives), checked before they
    are listed into work units and again when a unit is read.
    """
    try:
        check_file(path, root)
    except UnsafeFile as e:
        return unsafe_skip(e, item)
    except OSError as e:
        return Skip("unreadable_file", item[:500], str(e)[:300])
    return None


def byte_range_units(path: str | os.PathLike[str], chunk_bytes: int, label: str) -> list[str]:
    """Splits a line-oriented text file into JSON units [label, start, stop] of ~chunk_bytes.

    A line belongs to the unit in which its first byte lies (see `iter_lines_in_range`).
    """
    size = os.path.getsize(path)
    if size == 0:
        return []
    step = max(1, int(chunk_bytes))
    return [json.dumps([label, lo, min(size, lo + step)]) for lo in range(0, size, step)]


def iter_lines_in_range(path: str | os.PathLike[str], start: int, stop: int) -> Iterator[tuple[int, bytes]]:
    """(byte offset, line without newline) for each line that starts in [start, stop)."""
    with open(path, "rb") as f:
        if start > 0:
            f.seek(start - 1)
            if f.read(1) != b"\n":
                f.readline()  # the line in progress belongs to the previous unit
        pos = f.tell()
        while pos < stop:
            line = f.readline()
            if not line:
                break
            yield pos, line.rstrip(b"\r\n")
            pos = f.tell()
