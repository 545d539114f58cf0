"""YFCC100M metadata lines plus a folder of downloaded images.

Column layout assumed (tab-separated, one photo/video per line), from the dataset's
documentation (Thomee et al., "YFCC100M", CACM 2016, and the Multimedia Commons
`yfcc100m_dataset` file on AWS, which has 25 fields):

   0 line number            1 photo/video id        2 photo/video hash
   3 user NSID              4 user nickname         5 date taken
   6 date uploaded          7 capture device        8 title
   9 description           10 user tags            11 machine tags
  12 longitude             13 latitude             14 accuracy
  15 page URL              16 download URL         17 license name
  18 license URL           19 server id            20 farm id
  21 secret                22 secret original      23 extension of the original
  24 marker (0 = photo, 1 = video)

The original Webscope release has 23 fields: the same without the line number and the hash
(id first). Both are recognised by their field count. Text fields are URL-encoded
(`+` for spaces); the user tags column is a comma-separated list of URL-encoded tags.

Images are looked up in the image folder (option `images`, default `<metadata dir>/images`)
as `<id>.<ext>`, `<id>.jpg`, the basename of the download URL, or the Multimedia Commons
layout `<hash[:3]>/<hash[3:6]>/<hash>.jpg`. Hashtags are the user tags and machine tags;
the caption is the title and description. Option `labels` chooses the label source:
"hashtags" (default), "caption" (the title and description's noun phrases,
`weaksup.hashtags.text`) or "both"; `labeller` picks "weaksup" (default) or "catlip". Videos are skipped (`video`), as are photos without a file.

An image that is a symlink leading out of the image folder is skipped as `unsafe_path`,
one that is not a regular file (a FIFO, a device) as `not_a_file`; neither is opened.
Metadata files in an input folder are held to the same rules.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote_plus

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

# field name -> column, for the two published layouts (keyed by field count)
_LAYOUTS = {
    25: {"id": 1, "hash": 2, "user": 3, "title": 8, "description": 9, "user_tags": 10,
         "machine_tags": 11, "download_url": 16, "license": 17, "ext": 23, "marker": 24},
    23: {"id": 0, "user": 1, "title": 6, "description": 7, "user_tags": 8,
         "machine_tags": 9, "download_url": 14, "license": 15, "ext": 21, "marker": 22},
}


def machine_tag_values(field: str) -> list[str]:
    """The values of Flickr machine tags ("taxonomy:common=red+fox" -> "red fox").

    A machine tag is namespace:predicate=value; the value is what names the subject, and
    numeric values (ids, coordinates, ratings) name nothing.
    """
    out: list[str] = []
    for raw in field.split(","):
        tag = unquote_plus(raw).strip()
        _, eq, value = tag.partition("=")
        value = (value if eq else tag.rpartition(":")[2]).strip().strip('"')
        if value and not value.replace(".", "").replace("-", "").isdigit():
            out.append(value)
    return out


class YfccSource:
    """Posts from YFCC100M metadata and downloaded images."""

    name = "yfcc"

    def __init__(
        self,
        input: str | None,
        *,
        images: str | None = None,
        bytes_per_unit: int = 32 << 20,
        max_hashtags: int = DEFAULT_MAX_HASHTAGS,
        labels: str = "hashtags",
        labeller: str = "weaksup",
    ):
        if not input:
            raise SourceError("yfcc: --input (a YFCC100M metadata file or folder of them) is required")
        self.root = Path(input)
        if not self.root.exists():
            raise SourceError(f"yfcc: {self.root}: no such file or directory")
        base = self.root if self.root.is_dir() else self.root.parent
        self.images = Path(images) if images else base / "images"
        if not self.images.is_dir():
            raise SourceError(f"yfcc: image folder {self.images} does not exist (option images=DIR)")
        self.bytes_per_unit = int(bytes_per_unit)
        self.max_hashtags = int(max_hashtags)
        self.labels, self.labeller = check_label_options(self.name, labels, labeller)

    def _base(self) -> Path:
        return self.root if self.root.is_dir() else self.root.parent

    def _files(self) -> list[str]:
        if not self.root.is_dir():
            return [self.root.name]
        # Not p.is_file(): a symlink or FIFO among the metadata files is listed, then
        # refused and counted (unsafe_path, not_a_file) by `_refused`, never opened.
        return sorted(p.name for p in self.root.iterdir()
                      if not p.is_dir() and not p.name.startswith(".")
                      and p.suffix.lower() in ("", ".txt", ".tsv"))

    def _refused(self, name: str) -> Skip | None:
        return refused(self._base() / name, self._base() if self.root.is_dir() else None, name)

    def work_units(self) -> list[str]:
        units: list[str] = []
        for f in self._files():
            if self._refused(f) is not None:
                units.append(json.dumps([f, 0, 0]))  # read() counts the refusal
                continue
            units += byte_range_units(self._base() / f, self.bytes_per_unit, f)
        return units

    def _find_image(self, fields: dict[str, str]) -> Path | None:
        pid, ext = fields["id"], fields.get("ext") or "jpg"
        names = [f"{pid}.{ext}", f"{pid}.jpg"]
        url = fields.get("download_url", "")
        if url:
            names.append(url.rsplit("/", 1)[-1])
        h = fields.get("hash", "")
        if len(h) >= 6 and h.isalnum():
            names.append(f"{h[:3]}/{h[3:6]}/{h}.jpg")
        for name in names:
            # lexists, not is_file: a FIFO or a symlink leading out of the image folder is
            # found, then refused and counted when read (unsafe_path, not_a_file).
            path = self.images / name
            if name and safe_relative(name) and os.path.lexists(path) and not path.is_dir():
                return path
        return None

    def read(self, unit: str) -> Iterator[Post | Skip]:
        name, start, stop = json.loads(unit)
        path = self._base() / name
        refusal = self._refused(name)
        if refusal is not None:
            yield refusal
            return
        for offset, raw in iter_lines_in_range(path, start, stop):
            if not raw.strip():
                continue
            item = f"{name}@{offset}"
            fixes: list[str] = []
            line = decode_text(raw, fixes)
            cols = line.split("\t")
            layout = _LAYOUTS.get(len(cols))
            if layout is None:
                yield Skip("bad_line", item, f"{len(cols)} tab-separated fields, expected 23 or 25")
                continue
            fields = {k: cols[i] for k, i in layout.items()}
            pid = fields["id"].strip()
            if not pid.isdigit():
                yield Skip("bad_line", item, f"photo id {pid[:40]!r} is not numeric")
                continue
            if fields["marker"].strip() == "1":
                yield Skip("video", pid)
                continue
            tags = [unquote_plus(t).strip() for t in fields["user_tags"].split(",")]
            tags = [t for t in tags if t] + machine_tag_values(fields["machine_tags"])
            image_path = self._find_image(fields)
            if image_path is None:
                yield Skip("missing_image", pid, f"not found in {self.images}")
                continue
            try:
                data = read_file_capped(image_path, MAX_IMAGE_BYTES, self.images)
            except UnsafeFile as e:
                yield unsafe_skip(e, str(image_path))
                continue
            except (OSError, ValueError) as e:
                yield Skip("unreadable_file", str(image_path), str(e))
                continue
            title = unquote_plus(fields["title"]).strip()
            description = unquote_plus(fields["description"]).strip()
            caption = "\n".join(t for t in (title, description) if t) or None
            meta = {"file": image_path.relative_to(self.images).as_posix(),
                    "user": fields["user"], "license": unquote_plus(fields["license"])}
            yield assemble_post(
                pid, data, source=self.name, caption=caption, hashtags=tags, meta=meta,
                fixes=fixes, max_hashtags=self.max_hashtags, labels=self.labels,
                labeller=self.labeller,
            )
