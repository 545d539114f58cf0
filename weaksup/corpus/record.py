"""The corpus record: one post per ArrayRecord record, as a msgpack map.

A record is self-describing and never pickled. Keys (format version 1):

  v         int     record format version (FORMAT_VERSION)
  id        str     post id, unique within a corpus
  image     bytes   the encoded image exactly as the source had it (JPEG/PNG/...),
                    re-encoded only when it had to be normalised (see `meta["reencoded"]`)
  hashtags  [str]   raw hashtags as the user wrote them, without '#', in post order
  caption   str|nil optional caption text
  source    str     source name: instaloader, webdataset, jsonl, csv, yfcc, emojigram
  meta      map     JSON-compatible extras (width, height, original format, source paths,
                    EmojiGram ground truth under "concepts"/"artist" -- analysis only)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import msgpack

FORMAT_VERSION = 1

# Upper bounds that keep a hostile record from exhausting memory while decoding.
MAX_IMAGE_BYTES = 64 << 20
MAX_HASHTAGS = 1000
MAX_CAPTION_CHARS = 20_000


class RecordError(ValueError):
    """A record that cannot be decoded or does not follow the schema."""


@dataclasses.dataclass(frozen=True)
class Post:
    """One post: an encoded image and the hashtags its author wrote."""

    id: str
    image: bytes
    hashtags: tuple[str, ...]
    caption: str | None = None
    source: str = ""
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def encode_post(post: Post) -> bytes:
    """Serialises a post to record bytes."""
    return msgpack.packb(
        {
            "v": FORMAT_VERSION,
            "id": post.id,
            "image": bytes(post.image),
            "hashtags": list(post.hashtags),
            "caption": post.caption,
            "source": post.source,
            "meta": dict(post.meta),
        },
        use_bin_type=True,
    )


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise RecordError(what)


def decode_post(data: bytes) -> Post:
    """Parses record bytes into a Post; raises RecordError on anything malformed."""
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_bin_len=MAX_IMAGE_BYTES,
            max_str_len=MAX_IMAGE_BYTES,
            max_array_len=1 << 20,
            max_map_len=1 << 16,
        )
    except Exception as e:  # msgpack raises several unrelated types
        raise RecordError(f"not a msgpack record: {type(e).__name__}: {e}") from None
    _check(isinstance(obj, dict), "record is not a map")
    _check(obj.get("v") == FORMAT_VERSION, f"unsupported record version {obj.get('v')!r}")
    _check(isinstance(obj.get("id"), str) and obj["id"] != "", "missing or empty 'id'")
    _check(isinstance(obj.get("image"), bytes) and obj["image"], "missing or empty 'image'")
    tags = obj.get("hashtags")
    _check(
        isinstance(tags, list) and all(isinstance(t, str) for t in tags),
        "'hashtags' is not a list of strings",
    )
    caption = obj.get("caption")
    _check(caption is None or isinstance(caption, str), "'caption' is not a string")
    _check(isinstance(obj.get("source", ""), str), "'source' is not a string")
    meta = obj.get("meta", {})
    _check(isinstance(meta, dict), "'meta' is not a map")
    return Post(
        id=obj["id"],
        image=obj["image"],
        hashtags=tuple(tags),
        caption=caption,
        source=obj.get("source", ""),
        meta=meta,
    )


def decode_hashtags(data: bytes) -> list[str]:
    """A record's hashtags alone, with the version check; the image bytes are skipped, never copied.

    The fast path of every pass that needs only labels (post labels, coverage). Raises
    RecordError on anything `decode_post` would reject in the fields it reads.
    """
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True, max_buffer_size=len(data) + 1,
                                max_array_len=1 << 20, max_map_len=1 << 16)
    unpacker.feed(data)
    version, tags = None, None
    try:
        for _ in range(unpacker.read_map_header()):
            key = unpacker.unpack()
            if key == "v":
                version = unpacker.unpack()
            elif key == "hashtags":
                tags = unpacker.unpack()
            else:
                unpacker.skip()
    except Exception as e:  # msgpack raises several unrelated types
        raise RecordError(f"not a msgpack record: {type(e).__name__}: {e}") from None
    _check(version == FORMAT_VERSION, f"unsupported record version {version!r}")
    _check(
        isinstance(tags, list) and all(isinstance(t, str) for t in tags),
        "'hashtags' is not a list of strings",
    )
    return tags


def make_post(
    id: str,
    image: bytes,
    hashtags: Sequence[str],
    caption: str | None = None,
    source: str = "",
    meta: Mapping[str, Any] | None = None,
) -> Post:
    """Builds a Post, capping hashtags and caption at the schema's limits."""
    if caption is not None and len(caption) > MAX_CAPTION_CHARS:
        caption = caption[:MAX_CAPTION_CHARS]
    return Post(
        id=id,
        image=image,
        hashtags=tuple(hashtags[:MAX_HASHTAGS]),
        caption=caption,
        source=source,
        meta=dict(meta or {}),
    )
