"""JSONL and CSV manifests: one row per post with an image path and a caption and/or tags.

  {"id": "p1", "image": "img/p1.jpg", "caption": "sunset #beach", "tags": ["beach"]}
  id,image,caption,tags          (CSV with a header row; tags split on commas/whitespace)

Image paths are relative to the manifest's folder (or `base_dir`); absolute paths, paths
with `..` and symlinks that lead out of that folder are skipped as `unsafe_path` unless
`allow_outside=True`; FIFOs, devices and folders are skipped as `not_a_file` (neither is
ever opened: `weaksup.corpus.confine`); a manifest file in an input folder is held to the
same rules. Explicit tags win over the caption's hashtags; rows without an id get
`<manifest stem>:<row>`. Options `labels` (hashtags, caption, both) and `labeller`
(weaksup, catlip) label captions as the webdataset source does (`assemble_post`), so a
manifest of alt-text captions without tags becomes labelled posts. The input is one
manifest file or a folder of them. JSONL files are split into byte ranges for the
workers; a CSV file (quoted fields may span lines) is one work unit.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from weaksup.corpus.confine import UnsafeFile
from weaksup.corpus.record import MAX_IMAGE_BYTES, Post
from weaksup.corpus.sources.base import (
    DEFAULT_MAX_HASHTAGS,
    Skip,
    SourceError,
    assemble_post,
    byte_range_units,
    check_label_options,
    decode_text,
    iter_lines_in_range,
    read_file_capped,
    refused,
    safe_relative,
    unsafe_skip,
)

_IMAGE_KEYS = ("image", "image_path", "path", "file", "filename")
_CAPTION_KEYS = ("caption", "text", "description")
_TAGS_KEYS = ("tags", "hashtags")
_ID_KEYS = ("id", "key", "post_id")
_TAG_SPLIT = re.compile(r"[,\s]+")


class _ManifestSource:
    name = ""
    suffixes: tuple[str, ...] = ()

    def __init__(
        self,
        input: str | None,
        *,
        image_key: str | None = None,
        caption_key: str | None = None,
        tags_key: str | None = None,
        id_key: str | None = None,
        base_dir: str | None = None,
        allow_outside: bool = False,
        bytes_per_unit: int = 16 << 20,
        max_hashtags: int = DEFAULT_MAX_HASHTAGS,
        nouns: bool = False,
        labels: str = "hashtags",
        labeller: str = "weaksup",
    ):
        self.labels, self.labeller = check_label_options(self.name, labels, labeller)
        if not input:
            raise SourceError(f"{self.name}: --input (a manifest file or folder) is required")
        self.root = Path(input)
        if not self.root.exists():
            raise SourceError(f"{self.name}: {self.root}: no such file or directory")
        self.keys = {
            "image": (image_key,) if image_key else _IMAGE_KEYS,
            "caption": (caption_key,) if caption_key else _CAPTION_KEYS,
            "tags": (tags_key,) if tags_key else _TAGS_KEYS,
            "id": (id_key,) if id_key else _ID_KEYS,
        }
        self.base_dir = Path(base_dir) if base_dir else None
        self.allow_outside = bool(allow_outside)
        self.bytes_per_unit = int(bytes_per_unit)
        self.max_hashtags = int(max_hashtags)
        self.nouns = bool(nouns)

    def _base(self) -> Path:
        return self.root if self.root.is_dir() else self.root.parent

    def _files(self) -> list[str]:
        if not self.root.is_dir():
            return [self.root.name]
        # Not p.is_file(): a symlink or FIFO among the manifests is listed, then refused
        # and counted by `_refused`.
        return sorted(p.name for p in self.root.iterdir()
                      if p.name.lower().endswith(self.suffixes) and not p.is_dir())

    def _refused(self, name: str) -> Skip | None:
        return refused(self._base() / name, self._base() if self.root.is_dir() else None, name)

    @staticmethod
    def _first(row: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
        for k in keys:
            v = row.get(k)
            if v not in (None, ""):
                return v
        return None

    def _row_post(self, row: Any, manifest: Path, default_id: str) -> Post | Skip:
        if not isinstance(row, Mapping):
            return Skip("bad_line", default_id, "row is not an object")
        pid = self._first(row, self.keys["id"])
        pid = str(pid) if pid is not None else default_id
        rel = self._first(row, self.keys["image"])
        if not isinstance(rel, str):
            return Skip("missing_image", pid, "no image path in row")
        if not self.allow_outside and not safe_relative(rel):
            return Skip("unsafe_path", f"{pid}: {rel}"[:500], "absolute or '..' image path")
        base = self.base_dir or manifest.parent
        image_path = base / rel
        try:
            data = read_file_capped(image_path, MAX_IMAGE_BYTES, None if self.allow_outside else base)
        except UnsafeFile as e:
            return unsafe_skip(e, f"{pid}: {rel}")
        except FileNotFoundError:
            return Skip("missing_image", f"{pid}: {rel}"[:500], "file not found")
        except (OSError, ValueError) as e:
            return Skip("unreadable_file", f"{pid}: {rel}"[:500], str(e))
        fixes: list[str] = []
        caption = self._first(row, self.keys["caption"])
        caption = decode_text(caption, fixes) if isinstance(caption, (str, bytes)) else None
        tags = self._first(row, self.keys["tags"])
        if isinstance(tags, str):
            tags = [t for t in _TAG_SPLIT.split(tags) if t]
        elif isinstance(tags, list):
            tags = [str(t) for t in tags if isinstance(t, (str, int))]
        else:
            tags = None
        return assemble_post(
            pid, data, source=self.name, caption=caption, hashtags=tags or None,
            meta={"path": rel}, fixes=fixes, max_hashtags=self.max_hashtags, nouns=self.nouns,
            labels=self.labels, labeller=self.labeller,
        )


class JsonlSource(_ManifestSource):
    """Posts from JSON-lines manifests."""

    name = "jsonl"
    suffixes = (".jsonl", ".json")

    def work_units(self) -> list[str]:
        units: list[str] = []
        for f in self._files():
            if self._refused(f) is not None:
                units.append(json.dumps([f, 0, 0]))  # read() counts the refusal
                continue
            units += byte_range_units(self._base() / f, self.bytes_per_unit, f)
        return units

    def read(self, unit: str) -> Iterator[Post | Skip]:
        name, start, stop = json.loads(unit)
        path = self._base() / name
        refused = self._refused(name)
        if refused is not None:
            yield refused
            return
        stem = Path(name).stem
        for offset, line in iter_lines_in_range(path, start, stop):
            where = f"{stem}:{offset}"
            if not line.strip():
                continue
            fixes: list[str] = []
            text = decode_text(line, fixes)
            try:
                row = json.loads(text)
            except ValueError as e:
                yield Skip("bad_line", f"{name}@{offset}", str(e)[:200])
                continue
            item = self._row_post(row, path, where)
            if fixes and isinstance(item, Post):
                item = _with_fixes(item, fixes)
            yield item


class CsvSource(_ManifestSource):
    """Posts from CSV manifests with a header row."""

    name = "csv"
    suffixes = (".csv", ".tsv")

    def work_units(self) -> list[str]:
        return [json.dumps([f]) for f in self._files()]

    def read(self, unit: str) -> Iterator[Post | Skip]:
        (name,) = json.loads(unit)
        path = self._base() / name
        refused = self._refused(name)
        if refused is not None:
            yield refused
            return
        try:
            # surrogateescape keeps bad bytes until we know which row they belong to.
            text = path.read_bytes().decode("utf-8", errors="surrogateescape")
        except OSError as e:
            yield Skip("unreadable_file", name, str(e))
            return
        dialect = "excel-tab" if name.lower().endswith(".tsv") else "excel"
        csv.field_size_limit(64 << 20)
        reader = csv.DictReader(io.StringIO(text, newline=""), dialect=dialect)
        stem = Path(name).stem
        try:
            for i, row in enumerate(reader):
                fixes: list[str] = []
                for k, v in row.items():
                    if isinstance(v, str):
                        try:
                            v.encode("utf-8")
                        except UnicodeEncodeError:
                            raw = v.encode("utf-8", errors="surrogateescape")
                            row[k] = decode_text(raw, fixes)
                item = self._row_post(row, path, f"{stem}:{i}")
                if fixes and isinstance(item, Post):
                    item = _with_fixes(item, fixes)
                yield item
        except csv.Error as e:
            yield Skip("bad_line", f"{name}:{reader.line_num}", str(e)[:200])


def _with_fixes(post: Post, fixes: list[str]) -> Post:
    import dataclasses

    meta = dict(post.meta)
    meta["fixes"] = sorted(set(meta.get("fixes", [])) | set(fixes))
    return dataclasses.replace(post, meta=meta)
