"""img2dataset output: WebDataset tar shards and their parquet metadata.

img2dataset (`--output_format webdataset`) writes, per shard:

  00000.tar            members 000000000.jpg, 000000000.txt (caption), 000000000.json
                       (key, url, caption, status, width, height, ...), 000000001.jpg ...
  00000.parquet        one row per attempted sample: key, url, caption, status,
                       error_message, width, height, ...
  00000_stats.json     shard statistics (ignored)

The members of one sample are adjacent and share a key (the member name up to the first
dot of its base name). Tars are streamed member by member and never extracted: members
with absolute or `..` names, links and devices are skipped as `unsafe_path` and never
followed. An archive that breaks off inside a member header (a truncated download) counts
its lost remainder as one `truncated` skip; a tar or parquet file that is a symlink leading
out of the input folder is `unsafe_path`, one that is not a regular file `not_a_file`. A
caption missing from the tar is taken from the parquet; parquet rows whose download failed
are counted as `download_failed`. Hashtags come from the caption; with
`nouns=True` a caption without hashtags contributes its caption labels instead. Option
`labels` chooses the label source: "hashtags" (default, the above), "caption" (labels of
the caption's noun phrases, `weaksup.hashtags.text`, so alt-text shards yield labelled
posts) or "both"; `labeller` picks "weaksup" (default) or the "catlip" baseline.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from weaksup.corpus.confine import UnsafeFile, check_file
from weaksup.corpus.record import MAX_IMAGE_BYTES, Post
from weaksup.corpus.sources.base import (
    DEFAULT_MAX_HASHTAGS,
    Skip,
    SourceError,
    assemble_post,
    check_label_options,
    decode_text,
    safe_relative,
    unsafe_skip,
)

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
MAX_TEXT_BYTES = 8 << 20


def _split_member(name: str) -> tuple[str, str]:
    """WebDataset convention: key = path up to the first dot of the base name."""
    head, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (f"{head}/{stem}" if head else stem), ext.lower()


def _lost_remainder(tar: tarfile.TarFile) -> tuple[str, str] | None:
    """(skip reason, detail) when a streamed archive stopped before its real end, else None.

    tarfile ends iteration quietly at a header that is cut short or invalid anywhere but
    at the start, which would drop the rest of the archive unseen. At a proper end the
    stream stopped after a whole zero block (or at the very end) and only zeros follow.
    """
    stream, at = tar.fileobj, tar.offset
    consumed = stream.tell() - at
    if consumed == 0:
        return None  # no end-of-archive blocks, but nothing lost either
    if consumed < tarfile.BLOCKSIZE:
        return "truncated", f"archive ends inside a member header at byte {at}; the rest is lost"
    try:
        while block := stream.read(1 << 16):
            if block.count(0) != len(block):
                return "corrupt_archive", f"invalid member header at byte {at}; the rest of the archive is lost"
    except (OSError, tarfile.TarError, EOFError) as e:
        return "corrupt_archive", f"after byte {at}: {type(e).__name__}: {e}"
    return None


class WebDatasetSource:
    """Posts from img2dataset WebDataset tars (and parquet metadata)."""

    name = "webdataset"

    def __init__(
        self,
        input: str | None,
        *,
        nouns: bool = False,
        labels: str = "hashtags",
        labeller: str = "weaksup",
        max_hashtags: int = DEFAULT_MAX_HASHTAGS,
        use_parquet: bool = True,
    ):
        if not input:
            raise SourceError("webdataset: --input (a folder of .tar shards or one .tar) is required")
        self.root = Path(input)
        if not self.root.exists():
            raise SourceError(f"webdataset: {self.root}: no such file or directory")
        self.nouns = bool(nouns)
        self.labels, self.labeller = check_label_options(self.name, labels, labeller)
        self.max_hashtags = int(max_hashtags)
        self.use_parquet = bool(use_parquet)

    def _base(self) -> Path:
        return self.root if self.root.is_dir() else self.root.parent

    def _confined(self, path: Path) -> None:
        """Raises UnsafeFile for a tar/parquet that must not be opened (see `confine`)."""
        check_file(path, self.root if self.root.is_dir() else None)

    def work_units(self) -> list[str]:
        if not self.root.is_dir():  # one tar (read() refuses a FIFO or device)
            return [self.root.name]
        tars = sorted(p.name for p in self.root.glob("*.tar"))
        stems = {Path(t).stem for t in tars}
        parquets = sorted(
            p.name for p in self.root.glob("*.parquet") if p.stem not in stems
        ) if self.use_parquet else []
        return tars + parquets

    def _parquet_rows(self, path: Path) -> tuple[dict[str, dict[str, Any]], list[Skip]]:
        """key -> row for successful samples, and Skips for failed downloads."""
        rows: dict[str, dict[str, Any]] = {}
        skips: list[Skip] = []
        if not self.use_parquet or not path.exists():
            return rows, skips
        try:
            self._confined(path)
        except UnsafeFile as e:
            return rows, [unsafe_skip(e, path.name)]
        try:
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        except Exception as e:
            return rows, [Skip("bad_metadata", path.name, f"{type(e).__name__}: {e}")]
        for row in table.to_pylist():
            key = row.get("key")
            if key is None:
                continue
            status = row.get("status")
            if status not in (None, "success"):
                skips.append(Skip("download_failed", f"{path.name}:{key}",
                                  str(row.get("error_message") or status)[:200]))
            else:
                rows[str(key)] = row
        return rows, skips

    def read(self, unit: str) -> Iterator[Post | Skip]:
        path = self._base() / unit
        try:
            self._confined(path)
        except UnsafeFile as e:
            yield unsafe_skip(e, unit)
            return
        except OSError as e:
            yield Skip("unreadable_file", unit, str(e)[:300])
            return
        rows, skips = self._parquet_rows(path.with_suffix(".parquet"))
        yield from skips
        if path.suffix == ".parquet":
            for key in rows:
                yield Skip("missing_image", f"{unit}:{key}", "parquet row without a tar")
            return
        yield from self._read_tar(path, unit, rows)

    def _read_tar(self, path: Path, unit: str, rows: dict[str, dict]) -> Iterator[Post | Skip]:
        pending_key: str | None = None
        files: dict[str, bytes] = {}
        try:
            tar = tarfile.open(path, mode="r|*")
        except (OSError, tarfile.TarError) as e:
            yield Skip("corrupt_archive", unit, f"{type(e).__name__}: {e}")
            return
        with tar:
            try:
                for member in tar:
                    name = member.name
                    if member.isdir():
                        continue
                    if not safe_relative(name):
                        yield Skip("unsafe_path", f"{unit}:{name}", "absolute or '..' member name")
                        continue
                    if not member.isfile():
                        yield Skip("unsafe_path", f"{unit}:{name}", "link or special member, not followed")
                        continue
                    key, ext = _split_member(name)
                    if key != pending_key:
                        if pending_key is not None:
                            yield from self._sample(unit, pending_key, files, rows)
                        pending_key, files = key, {}
                    limit = MAX_IMAGE_BYTES if ext in IMAGE_EXTS else MAX_TEXT_BYTES
                    if member.size > limit:
                        yield Skip("file_too_large", f"{unit}:{name}", f"{member.size} bytes")
                        continue
                    f = tar.extractfile(member)
                    files[ext] = f.read() if f is not None else b""
            except (OSError, tarfile.TarError, EOFError) as e:
                # The sample being read when the archive broke may be incomplete: it is
                # part of this skip, not a post.
                yield Skip("corrupt_archive", f"{unit}:{pending_key}", f"{type(e).__name__}: {e}")
                pending_key = None
            else:
                lost = _lost_remainder(tar)
                if lost is not None:
                    # Like a break above: the sample in progress may have lost members.
                    yield Skip(lost[0], f"{unit}:{pending_key or '(start)'}", lost[1])
                    pending_key = None
        if pending_key is not None:
            yield from self._sample(unit, pending_key, files, rows)

    def _sample(self, unit: str, key: str, files: dict[str, bytes], rows: dict[str, dict]) -> Iterator[Post | Skip]:
        item = f"{unit}:{key}"
        image_ext = next((e for e in IMAGE_EXTS if e in files), None)
        if image_ext is None:
            yield Skip("missing_image", item, f"members: {sorted(files)}")
            return
        fixes: list[str] = []
        info: dict[str, Any] = {}
        if "json" in files:
            try:
                obj = json.loads(files["json"])
                info = obj if isinstance(obj, dict) else {}
            except ValueError:
                fixes.append("bad_metadata")
        row = rows.get(info.get("key", key)) or rows.get(key) or {}
        if "txt" in files:
            caption = decode_text(files["txt"], fixes)
        elif isinstance(info.get("caption"), str):
            caption = info["caption"]
        elif isinstance(row.get("caption"), str):
            caption = row["caption"]
            fixes.append("caption_from_parquet")
        else:
            yield Skip("missing_caption", item, "no .txt member, json or parquet caption")
            return
        pid = str(info.get("key") or key)
        meta: dict[str, Any] = {"member": f"{unit}:{key}.{image_ext}"}
        url = info.get("url") or row.get("url")
        if isinstance(url, str):
            meta["url"] = url[:2000]
        yield assemble_post(
            pid, files[image_ext], source=self.name, caption=caption, meta=meta, fixes=fixes,
            max_hashtags=self.max_hashtags, nouns=self.nouns, labels=self.labels,
            labeller=self.labeller,
        )
