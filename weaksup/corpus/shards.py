"""ArrayRecord corpus shards, the manifest, and the reader `Corpus`.

A corpus directory holds:

  posts-00000-of-00016.array_record ...  one post per record (weaksup.corpus.record),
                                         written with group_size:1 for random access
  hashtag_counts.json                    {raw hashtag as written: count}
  manifest.json                          written last; its presence marks a complete build

Every file is written under a temporary name and renamed into place, and the manifest is
written after all shards and the hashtag counts, so an interrupted build never looks
complete. manifest.json (format_version 1):

  format_version, records, shards: [{name, records, bytes, sha256}],
  skipped: {reason: count}, skipped_examples: {reason: [item, ...]},
  normalised: {what: count}, hashtags: {distinct, total, file: "hashtag_counts.json"},
  build: {source, input, options, runner, num_shards, dedup, ...}
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from weaksup import atomic
from weaksup.atomic import TMP_PREFIX
from weaksup.corpus.confine import UnsafeFile, check_file
from weaksup.corpus.record import Post, RecordError, decode_post
from weaksup.errors import UsageError, os_cause

MANIFEST = "manifest.json"
HASHTAG_COUNTS = "hashtag_counts.json"
MANIFEST_VERSION = 1
SHARD_SUFFIX = ".array_record"
# group_size:1 gives grain O(1) random access per record; images are already compressed,
# so zstd would only spend CPU ("uncompressed").
WRITER_OPTIONS = "group_size:1,uncompressed"


class NamedRecordSource:
    """A corpus's grain record source whose read errors name the shard and record.

    riegeli reports a damaged chunk without a file name; a long training run that meets
    one then stops with a message saying which shard to rebuild or remove.
    """

    def __init__(self, source: Any, corpus: "Corpus"):
        self._source, self._corpus = source, corpus

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> bytes:
        try:
            return self._source[index]
        except Exception as e:  # riegeli's RuntimeError/ValueError on damaged data
            raise CorpusError(f"{self._corpus.describe(index)}: unreadable record: {e}") from None

    def __getitems__(self, indices: Sequence[int]) -> Sequence[bytes]:
        return [self[i] for i in indices]

    def __repr__(self) -> str:
        return f"NamedRecordSource({self._corpus.path})"


class CorpusError(UsageError, RuntimeError):
    """A corpus directory or shard that is missing, incomplete or corrupt."""


@dataclasses.dataclass(frozen=True)
class ShardInfo:
    """One written shard as the manifest records it."""

    name: str
    records: int
    bytes: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def shard_name(index: int, num_shards: int) -> str:
    """File name of shard `index` of `num_shards`."""
    return f"posts-{index:05d}-of-{num_shards:05d}{SHARD_SUFFIX}"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_shard(path: str | os.PathLike[str], records: Iterable[bytes]) -> ShardInfo:
    """Writes record bytes to one ArrayRecord shard atomically (temp name, then rename)."""
    from array_record.python.array_record_module import ArrayRecordWriter

    path = Path(path)
    if not path.parent.is_dir():
        raise CorpusError(f"shard {path}: folder {path.parent} does not exist")
    n = 0
    with atomic.replacing(path) as tmp:
        # riegeli reports I/O failures (a full disk, ...) as RuntimeError, from a write or,
        # as buffered data is flushed, from close.
        try:
            writer = ArrayRecordWriter(str(tmp), WRITER_OPTIONS)
            try:
                for rec in records:
                    writer.write(rec)
                    n += 1
                ok = writer.ok()
            finally:
                writer.close()
        except CorpusError:  # from the records themselves (a source corpus's shard)
            raise
        except RuntimeError as e:
            cause = os_cause(e)  # e.g. "No space left on device (ENOSPC)", from riegeli's message
            raise CorpusError(f"shard {path}: write failed: {f'{cause}: ' if cause else ''}{_short(e)}") from None
        if not ok:
            raise CorpusError(f"shard {path}: ArrayRecord writer reported an error")
        info = ShardInfo(path.name, n, tmp.stat().st_size, file_sha256(tmp))
    return info


def write_manifest(
    directory: str | os.PathLike[str],
    shards: Iterable[ShardInfo],
    *,
    skipped: dict[str, int] | None = None,
    skipped_examples: dict[str, list[str]] | None = None,
    normalised: dict[str, int] | None = None,
    hashtag_counts: dict[str, int] | None = None,
    build: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Writes hashtag_counts.json, then manifest.json (last: it marks completion)."""
    directory = Path(directory)
    shards = sorted(shards, key=lambda s: s.name)
    counts = dict(sorted((hashtag_counts or {}).items(), key=lambda kv: (-kv[1], kv[0])))
    atomic.write_json(directory / HASHTAG_COUNTS, counts, indent=None, fsync=True)
    manifest = {
        "format_version": MANIFEST_VERSION,
        "records": sum(s.records for s in shards),
        "bytes": sum(s.bytes for s in shards),
        "shards": [s.to_json() for s in shards],
        "skipped": dict(sorted((skipped or {}).items())),
        "skipped_examples": dict(sorted((skipped_examples or {}).items())),
        "normalised": dict(sorted((normalised or {}).items())),
        "hashtags": {
            "distinct": len(counts),
            "total": int(sum(counts.values())),
            "file": HASHTAG_COUNTS,
        },
        "build": build or {},
    }
    atomic.write_json(directory / MANIFEST, manifest, fsync=True)
    return manifest


def remove_incomplete(directory: str | os.PathLike[str]) -> int:
    """Deletes shards and temp files of an interrupted build (no manifest); returns count.

    Only files named by this module's scheme are touched.
    """
    directory = Path(directory)
    if (directory / MANIFEST).exists():
        raise CorpusError(f"{directory}: has a {MANIFEST}; refusing to treat it as incomplete")
    n = 0
    for p in directory.iterdir() if directory.is_dir() else ():
        if p.is_file() and (
            (p.name.startswith("posts-") and p.name.endswith(SHARD_SUFFIX))
            or p.name.startswith(TMP_PREFIX)
            or p.name == HASHTAG_COUNTS
        ):
            p.unlink()
            n += 1
    return n


@dataclasses.dataclass(frozen=True)
class RecordLocator:
    """Global record index -> (shard, index in the shard); picklable, for messages in data workers."""

    shard_paths: tuple[str, ...]
    starts: tuple[int, ...]  # global index of each shard's first record
    total: int

    def locate(self, i: int) -> tuple[int, int]:
        """(shard number, record number within it) of global record `i` (negative counts from the end)."""
        if i < 0:
            i += self.total
        if not 0 <= i < self.total:
            raise IndexError(f"record {i} out of range [0, {self.total})")
        k = bisect.bisect_right(self.starts, i) - 1
        return k, i - self.starts[k]

    def __call__(self, i: int) -> str:
        """"shard PATH record J": where record `i` lives, for error messages."""
        k, j = self.locate(i)
        return f"shard {self.shard_paths[k]} record {j}"


def _manifest_file(directory: Path, name: Any, what: str) -> Path:
    """`directory / name` for a file the manifest names: a plain name of a regular file inside `directory`.

    A hand-edited manifest must not make the reader open `/etc/passwd`, `../other` or a FIFO.
    """
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name \
            or "\x00" in name:
        raise CorpusError(f"{directory / MANIFEST}: {what} {name!r} is not a file name in {directory}")
    path = directory / name
    try:
        check_file(path, directory)
    except UnsafeFile as e:
        raise CorpusError(f"{what} {path}: {e.detail} ({e.reason}; listed in {MANIFEST})") from None
    except FileNotFoundError:
        raise CorpusError(f"{what} {path}: missing (listed in {MANIFEST})") from None
    except OSError as e:
        raise CorpusError(f"{what} {path}: {e.strerror or e}") from None
    return path


def shard_record_count(path: str | os.PathLike[str]) -> int:
    """Records in one ArrayRecord shard, from its footer (cheap: no record is read).

    Raises CorpusError naming the shard when it is not a readable ArrayRecord file.
    """
    from array_record.python.array_record_module import ArrayRecordReader

    try:  # riegeli reports a corrupt file as RuntimeError/ValueError, at open, count or close
        reader = ArrayRecordReader(str(path), "readahead_buffer_size:0")
        try:
            n = int(reader.num_records())
        finally:
            reader.close()
    except Exception as e:
        raise CorpusError(f"shard {path}: not a readable ArrayRecord file: {_short(e)}") from None
    return n


def _short(e: BaseException) -> str:
    """The first line of an exception's message (riegeli's span several, with C++ frames)."""
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__


class Corpus:
    """Read access to a complete corpus directory (one with a manifest).

    Opening checks that every shard the manifest lists is a regular file in the corpus
    folder with its recorded size and record count (read from each shard's footer, so a
    garbage or swapped shard and a hand-edited count fail here, naming the shard);
    `verify()` checks checksums and decodes every record.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        mpath = self.path / MANIFEST
        if not self.path.is_dir():
            raise CorpusError(f"{self.path}: not a corpus directory")
        if not mpath.exists():
            raise CorpusError(
                f"{self.path}: no {MANIFEST} (an incomplete or interrupted build; "
                "re-run `python -m weaksup corpus build` to finish it)"
            )
        try:
            self.manifest: dict[str, Any] = json.loads(mpath.read_text(encoding="utf-8"))
            shards = [ShardInfo(**s) for s in self.manifest["shards"]]
        except (ValueError, KeyError, TypeError) as e:
            raise CorpusError(f"{mpath}: unreadable manifest: {e}") from None
        if self.manifest.get("format_version") != MANIFEST_VERSION:
            raise CorpusError(
                f"{mpath}: unsupported format_version {self.manifest.get('format_version')!r}"
            )
        self.shards = shards
        self.shard_paths: list[Path] = [_manifest_file(self.path, s.name, "shard") for s in shards]
        for info, p in zip(shards, self.shard_paths):
            size = p.stat().st_size
            if size != info.bytes:
                raise CorpusError(
                    f"shard {p}: {size} bytes, manifest says {info.bytes} (truncated or replaced)"
                )
            n = shard_record_count(p)
            if n != info.records:
                raise CorpusError(
                    f"shard {p}: {n} records, manifest says {info.records} (manifest edited or shard replaced)"
                )
        starts, total = [], 0
        for s in shards:
            starts.append(total)
            total += s.records
        self._len = total
        # Where each record lives; `describe(i)` names it in messages.
        self.describe = RecordLocator(tuple(str(p) for p in self.shard_paths), tuple(starts), total)
        self._readers: dict[int, Any] = {}

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return f"Corpus({str(self.path)!r}, records={self._len}, shards={len(self.shards)})"

    def _reader(self, k: int) -> Any:
        r = self._readers.get(k)
        if r is None:
            from array_record.python.array_record_module import ArrayRecordReader

            p = self.shard_paths[k]
            try:
                r = ArrayRecordReader(str(p), "readahead_buffer_size:0")
                n = r.num_records()
            except Exception as e:
                raise CorpusError(f"shard {p}: cannot open: {_short(e)}") from None
            if n != self.shards[k].records:
                r.close()
                raise CorpusError(
                    f"shard {p}: {n} records, manifest says {self.shards[k].records} "
                    "(truncated or corrupt)"
                )
            self._readers[k] = r
        return r

    def _locate(self, i: int) -> tuple[int, int]:
        return self.describe.locate(i)

    @property
    def manifest_sha256(self) -> str:
        """Checksum of manifest.json: identifies the corpus contents (vocabularies and label caches record it)."""
        return file_sha256(self.path / MANIFEST)

    def record_bytes(self, i: int) -> bytes:
        """Raw bytes of record `i` (global index over all shards)."""
        k, j = self._locate(i)
        try:
            return self._reader(k).read([j])[0]
        except CorpusError:
            raise
        except Exception as e:
            raise CorpusError(f"shard {self.shard_paths[k]}: record {j}: {_short(e)}") from None

    def __getitem__(self, i: int) -> Post:
        k, j = self._locate(i)
        data = self.record_bytes(i)
        try:
            return decode_post(data)
        except RecordError as e:
            raise CorpusError(f"shard {self.shard_paths[k]}: record {j}: {e}") from None

    def iter_shard(self, k: int) -> Iterator[Post]:
        """All posts of shard `k`, read sequentially."""
        r = self._reader(k)
        n = self.shards[k].records
        step = 256
        for lo in range(0, n, step):
            try:
                batch = r.read(list(range(lo, min(n, lo + step))))
            except Exception as e:
                raise CorpusError(f"shard {self.shard_paths[k]}: records {lo}+: {_short(e)}") from None
            for j, data in enumerate(batch):
                try:
                    yield decode_post(data)
                except RecordError as e:
                    raise CorpusError(
                        f"shard {self.shard_paths[k]}: record {lo + j}: {e}"
                    ) from None

    def __iter__(self) -> Iterator[Post]:
        for k in range(len(self.shards)):
            yield from self.iter_shard(k)

    def hashtag_counts(self) -> dict[str, int]:
        """{raw hashtag as written: number of posts using it} over the whole corpus."""
        hashtags = self.manifest.get("hashtags")
        name = hashtags.get("file", HASHTAG_COUNTS) if isinstance(hashtags, dict) else HASHTAG_COUNTS
        p = _manifest_file(self.path, name, "hashtag counts")
        try:
            counts = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise CorpusError(f"{p}: unreadable hashtag counts: {e}") from None
        if not isinstance(counts, dict):
            raise CorpusError(f"{p}: hashtag counts are not a JSON object")
        return counts

    def data_source(self) -> Any:
        """A grain ArrayRecordDataSource over the shards, yielding record bytes."""
        import grain

        if not self._len:
            raise CorpusError(f"{self.path}: the corpus has no records")
        # Explicit [start:stop] ranges from the manifest spare opening every shard up front.
        return NamedRecordSource(grain.sources.ArrayRecordDataSource(
            [f"{p}[0:{s.records}]" for p, s in zip(self.shard_paths, self.shards) if s.records]
        ), self)

    def verify(self, decode: bool = True) -> dict[str, Any]:
        """Checks every shard's checksum and record count (and decodes every record).

        Raises CorpusError naming the first bad shard; returns a summary otherwise.
        """
        for k, (info, p) in enumerate(zip(self.shards, self.shard_paths)):
            digest = file_sha256(p)
            if digest != info.sha256:
                raise CorpusError(f"shard {p}: checksum mismatch (corrupt or replaced)")
            self._reader(k)
            if decode:
                n = sum(1 for _ in self.iter_shard(k))
                if n != info.records:
                    raise CorpusError(f"shard {p}: read {n} records, manifest says {info.records}")
        return {"shards": len(self.shards), "records": self._len, "ok": True}

    def stats(self, top: int = 20) -> dict[str, Any]:
        """Summary for `corpus stats`: records, shards, skipped, top hashtags, ..."""
        counts = self.hashtag_counts()
        top_tags = Counter(counts).most_common(top)
        m = self.manifest
        return {
            "path": str(self.path),
            "records": self._len,
            "shards": len(self.shards),
            "bytes": int(m.get("bytes", sum(s.bytes for s in self.shards))),
            "skipped": m.get("skipped", {}),
            "normalised": m.get("normalised", {}),
            "distinct_hashtags": len(counts),
            "hashtag_occurrences": int(sum(counts.values())),
            "top_hashtags": [[t, c] for t, c in sorted(top_tags, key=lambda kv: (-kv[1], kv[0]))],
            "build": m.get("build", {}),
        }

    def close(self) -> None:
        """Closes open shard readers."""
        for r in self._readers.values():
            r.close()
        self._readers.clear()

    def __enter__(self) -> Corpus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
