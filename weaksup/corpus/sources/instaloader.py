"""Instaloader download folders.

Instaloader (https://instaloader.github.io) names a post's files by its UTC date with the
default `--filename-pattern={date_utc}_UTC`:

  2019-06-01_12-00-00_UTC.jpg        a single-image post
  2019-06-01_12-00-00_UTC_1.jpg ...  the images of a sidecar (carousel) post, numbered from 1
  2019-06-01_12-00-00_UTC.txt        the caption
  2019-06-01_12-00-00_UTC.json.xz    the post's metadata (GraphQL node; `.json` with
                                     --no-compress-json), holding the shortcode and caption

Videos, comments, location files and profile pictures are ignored. The input is a
download folder or a folder of them (one per profile/hashtag); every folder holding
`*_UTC*` files is read. Hashtags come from the caption (the .txt, else the metadata).
`group="image"` (default) makes one post per image; `group="post"` one post per sidecar
group, with its first image. A post file that is a symlink leading out of the input folder
is skipped as `unsafe_path`, one that is not a regular file (a FIFO, a device) as
`not_a_file`; neither is opened.
"""

from __future__ import annotations

import json
import lzma
import os
import re
from collections.abc import Iterator
from pathlib import Path

from weaksup.corpus.confine import UnsafeFile
from weaksup.corpus.record import MAX_IMAGE_BYTES, Post
from weaksup.corpus.sources.base import (
    DEFAULT_MAX_HASHTAGS,
    Skip,
    SourceError,
    assemble_post,
    decode_text,
    read_file_capped,
    unsafe_skip,
)

_STEM = r"(\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}_UTC)"
_IMAGE_RE = re.compile(_STEM + r"(?:_(\d+))?\.(jpe?g|png|webp|gif|heic)$", re.IGNORECASE)
_CAPTION_RE = re.compile(_STEM + r"\.txt$")
_META_RE = re.compile(_STEM + r"\.json(\.xz)?$")
MAX_META_BYTES = 16 << 20


class InstaloaderSource:
    """Posts from instaloader download folders."""

    name = "instaloader"

    def __init__(
        self,
        input: str | None,
        *,
        group: str = "image",
        posts_per_unit: int = 500,
        max_hashtags: int = DEFAULT_MAX_HASHTAGS,
    ):
        if not input:
            raise SourceError("instaloader: --input DIR (an instaloader download folder) is required")
        self.root = Path(input)
        if not self.root.is_dir():
            raise SourceError(f"instaloader: {self.root}: not a directory")
        if group not in ("image", "post"):
            raise SourceError(f"instaloader: group must be 'image' or 'post', not {group!r}")
        self.group = group
        self.posts_per_unit = max(1, int(posts_per_unit))
        self.max_hashtags = int(max_hashtags)

    def _folders(self) -> list[Path]:
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            dirnames.sort()
            if any("_UTC" in f for f in filenames):
                found.append(Path(dirpath))
        return found

    def _stems(self, folder: Path) -> dict[str, dict]:
        # A worker reads consecutive units of one folder: scan it once, not once per unit.
        cached = getattr(self, "_stem_cache", None)
        if cached is not None and cached[0] == folder:
            return cached[1]
        posts = self._scan(folder)
        self._stem_cache = (folder, posts)
        return posts

    @staticmethod
    def _scan(folder: Path) -> dict[str, dict]:
        posts: dict[str, dict] = {}
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            # Symlinks and special files named like post files are listed too: reading
            # refuses and counts them (unsafe_path, not_a_file) instead of ignoring them.
            if entry.is_dir(follow_symlinks=False):
                continue
            name = entry.name
            if m := _IMAGE_RE.fullmatch(name):
                p = posts.setdefault(m.group(1), {"images": {}})
                p["images"][int(m.group(2) or 0)] = name
            elif m := _CAPTION_RE.fullmatch(name):
                posts.setdefault(m.group(1), {"images": {}})["caption"] = name
            elif m := _META_RE.fullmatch(name):
                posts.setdefault(m.group(1), {"images": {}})["meta"] = name
        return posts

    def work_units(self) -> list[str]:
        units = []
        for folder in self._folders():
            rel = folder.relative_to(self.root).as_posix()
            n = len(self._stems(folder))
            units += [json.dumps([rel, lo, min(n, lo + self.posts_per_unit)])
                      for lo in range(0, n, self.posts_per_unit)]
        return units

    def read(self, unit: str) -> Iterator[Post | Skip]:
        rel, lo, hi = json.loads(unit)
        folder = self.root / rel
        stems = self._stems(folder)
        for stem in sorted(stems)[lo:hi]:
            yield from self._read_post(folder, rel, stem, stems[stem])

    def _read_post(self, folder: Path, rel: str, stem: str, files: dict) -> Iterator[Post | Skip]:
        where = f"{rel}/{stem}" if rel != "." else stem
        fixes: list[str] = []
        node: dict = {}
        if "meta" in files:
            path = folder / files["meta"]
            try:
                raw = read_file_capped(path, MAX_META_BYTES, self.root)
                if path.name.endswith(".xz"):
                    raw = lzma.decompress(raw, memlimit=256 << 20)
                obj = json.loads(raw)
                node = obj.get("node", obj) if isinstance(obj, dict) else {}
                if not isinstance(node, dict):
                    node = {}
            except UnsafeFile as e:
                yield unsafe_skip(e, f"{rel}/{files['meta']}")
                return
            except (OSError, ValueError, lzma.LZMAError) as e:
                fixes.append("bad_metadata")
                node = {"_error": f"{type(e).__name__}: {e}"}
        caption = None
        if "caption" in files:
            try:
                caption = decode_text(read_file_capped(folder / files["caption"], 8 << 20, self.root), fixes)
            except UnsafeFile as e:
                yield unsafe_skip(e, f"{where}.txt")
                return
            except (OSError, ValueError) as e:
                yield Skip("unreadable_file", f"{where}.txt", str(e))
                return
        if caption is None:
            try:
                caption = node["edge_media_to_caption"]["edges"][0]["node"]["text"]
                if not isinstance(caption, str):
                    caption = None
            except (KeyError, IndexError, TypeError):
                caption = None
        images = files["images"]
        if not images:
            yield Skip("missing_image", where, "caption/metadata without an image file")
            return
        shortcode = node.get("shortcode") if isinstance(node.get("shortcode"), str) else None
        base_id = shortcode or where
        meta = {"path": where}
        if shortcode:
            meta["shortcode"] = shortcode
        if isinstance(node.get("taken_at_timestamp"), int):
            meta["taken_at"] = node["taken_at_timestamp"]
        numbers = sorted(images)
        if numbers != [0] and numbers != list(range(1, len(numbers) + 1)):
            fixes.append("sidecar_gap")
        if self.group == "post":
            numbers = numbers[:1]
        for k in numbers:
            name = images[k]
            pid = base_id if k == 0 or self.group == "post" else f"{base_id}_{k}"
            try:
                data = read_file_capped(folder / name, MAX_IMAGE_BYTES, self.root)
            except UnsafeFile as e:
                yield unsafe_skip(e, f"{rel}/{name}")
                continue
            except (OSError, ValueError) as e:
                yield Skip("unreadable_file", f"{rel}/{name}", str(e))
                continue
            m = dict(meta, file=name)
            if len(images) > 1:
                m["sidecar"] = {"index": k, "count": len(images)}
            if caption is None:
                yield Skip("missing_caption", f"{rel}/{name}", "no .txt caption and no metadata caption")
                continue
            yield assemble_post(
                pid, data, source=self.name, caption=caption, meta=m, fixes=fixes,
                max_hashtags=self.max_hashtags,
            )
