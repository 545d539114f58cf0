import msgpack
import pytest

from weaksup.corpus import record


def test_roundtrip():
    post = record.make_post("p1", b"\xff\xd8jpeg", ["Dog", "beach"], "a #Dog", "jsonl", {"w": 3})
    back = record.decode_post(record.encode_post(post))
    assert back == post


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "not a msgpack"),
        (b"\xc1", "not a msgpack"),
        (msgpack.packb([1, 2]), "not a map"),
        (msgpack.packb({"v": 99}), "unsupported record version"),
        (msgpack.packb({"v": 1, "id": "x", "image": b"i", "hashtags": [1]}), "hashtags"),
        (msgpack.packb({"v": 1, "id": "", "image": b"i", "hashtags": []}), "'id'"),
    ],
)
def test_malformed_records_raise(data, message):
    with pytest.raises(record.RecordError, match=message):
        record.decode_post(data)


def test_make_post_caps_hashtags_and_caption():
    post = record.make_post("p", b"x", ["t"] * 5000, "c" * 100_000)
    assert len(post.hashtags) == record.MAX_HASHTAGS
    assert len(post.caption) == record.MAX_CAPTION_CHARS
