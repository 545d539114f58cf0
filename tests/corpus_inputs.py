"""Writers of real-format corpus inputs for the corpus tests, with bad items mixed in.

Each writer lays files out the way the real tool does (instaloader, img2dataset, YFCC100M
metadata, JSONL/CSV manifests) and returns what a correct reader must report.
"""

from __future__ import annotations

import io
import json
import lzma
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def picture(seed: int, size: tuple[int, int] = (96, 72)) -> Image.Image:
    """A distinct RGB picture: coloured ellipses on a coloured background."""
    r = np.random.default_rng(seed)
    w, h = size
    im = Image.new("RGB", size, tuple(int(x) for x in r.integers(0, 256, 3)))
    d = ImageDraw.Draw(im)
    for _ in range(8):
        x, y = int(r.integers(0, w)), int(r.integers(0, h))
        d.ellipse([x, y, x + int(r.integers(2, max(3, w // 2))), y + int(r.integers(2, max(3, h // 2)))],
                  fill=tuple(int(v) for v in r.integers(0, 256, 3)))
    return im


def encode(im: Image.Image, fmt: str = "JPEG", **kw) -> bytes:
    b = io.BytesIO()
    im.save(b, format=fmt, **kw)
    return b.getvalue()


def jpeg(seed: int, size: tuple[int, int] = (96, 72)) -> bytes:
    return encode(picture(seed, size), "JPEG", quality=90)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(side: int = 20000) -> bytes:
    """A ~100-byte PNG declaring side x side greyscale pixels (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    row = b"\x00" + b"\x00" * side
    comp = zlib.compressobj(9)
    idat = comp.compress(row * 64) + comp.flush()
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def png16_rgb(seed: int, size: tuple[int, int] = (40, 30)) -> bytes:
    """A 16-bit-per-channel RGB PNG written chunk by chunk, as cameras/tools write them."""
    w, h = size
    a = (np.asarray(picture(seed, size), dtype=np.uint16) * 257).astype(">u2")
    raw = b"".join(b"\x00" + a[y].tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b"")


def odd_images(seed: int = 100) -> dict[str, bytes]:
    """name -> bytes for every image oddity the corpus must handle (normalise or skip)."""
    base = picture(seed)
    rgba = base.convert("RGBA")
    rgba.putalpha(128)
    pal_t = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal_t.info["transparency"] = 0
    good = jpeg(seed)
    return {
        # normalised (kept, re-encoded)
        "cmyk.jpg": encode(base.convert("CMYK"), "JPEG", quality=90),
        "grey.jpg": encode(base.convert("L"), "JPEG", quality=90),
        "palette.png": encode(base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG"),
        "palette_alpha.png": encode(pal_t, "PNG"),
        "alpha.png": encode(rgba, "PNG"),
        "grey16.png": encode(Image.fromarray((np.asarray(base.convert("L"), dtype=np.uint16) * 257)), "PNG"),
        "rgb16.png": png16_rgb(seed + 1),
        "gif.gif": encode(base, "GIF"),
        # skipped
        "zero.jpg": b"",
        "text.jpg": b"this is not a JPEG, just text with a .jpg name\n",
        "truncated.jpg": good[: len(good) // 2],
        "bomb.png": bomb_png(),
    }


ODD_REASONS = {
    "zero.jpg": "empty_image",
    "text.jpg": "not_an_image",
    "truncated.jpg": "corrupt_image",
    "bomb.png": "too_many_pixels",
}


def instaloader_folder(root: Path) -> dict:
    """An instaloader download folder (default filename pattern) with bad items."""
    d = root / "natgeo"
    d.mkdir(parents=True)
    # single-image post with caption and compressed metadata
    (d / "2019-06-01_12-00-00_UTC.jpg").write_bytes(jpeg(1))
    (d / "2019-06-01_12-00-00_UTC.txt").write_text("Sunset at the beach #sunset #beach #Travel", encoding="utf-8")
    node = {"node": {"shortcode": "BAAA111", "taken_at_timestamp": 1559390400,
                     "edge_media_to_caption": {"edges": [{"node": {"text": "Sunset at the beach #sunset #beach #Travel"}}]}},
            "instaloader": {"version": "4.13", "node_type": "Post"}}
    (d / "2019-06-01_12-00-00_UTC.json.xz").write_bytes(lzma.compress(json.dumps(node).encode()))
    # sidecar post: three images, caption only in the .json.xz (no .txt)
    for k in (1, 2, 3):
        (d / f"2019-06-02_08-30-00_UTC_{k}.jpg").write_bytes(jpeg(10 + k))
    node2 = {"node": {"shortcode": "BBBB222", "edge_media_to_caption": {"edges": [{"node": {"text": "#dogs of the day #puppy"}}]}}}
    (d / "2019-06-02_08-30-00_UTC.json.xz").write_bytes(lzma.compress(json.dumps(node2).encode()))
    # image without any caption (missing sidecar .txt and .json.xz)
    (d / "2019-06-03_09-00-00_UTC.jpg").write_bytes(jpeg(20))
    # caption without its image
    (d / "2019-06-04_10-00-00_UTC.txt").write_text("#lonely caption", encoding="utf-8")
    # invalid UTF-8 caption, CMYK image
    (d / "2019-06-05_11-00-00_UTC.jpg").write_bytes(odd_images()["cmyk.jpg"])
    (d / "2019-06-05_11-00-00_UTC.txt").write_bytes(b"caf\xe9 \xff #coffee #morning")
    # 5,000 hashtags and a 1 MB caption
    (d / "2019-06-06_12-00-00_UTC.jpg").write_bytes(jpeg(30))
    tags = " ".join(f"#tag{i}" for i in range(5000))
    (d / "2019-06-06_12-00-00_UTC.txt").write_text(tags + " " + "x" * (1 << 20), encoding="utf-8")
    # corrupt (zero-byte) image, caption without hashtags
    (d / "2019-06-07_13-00-00_UTC.jpg").write_bytes(b"")
    (d / "2019-06-07_13-00-00_UTC.txt").write_text("#broken", encoding="utf-8")
    (d / "2019-06-08_14-00-00_UTC.jpg").write_bytes(jpeg(40))
    (d / "2019-06-08_14-00-00_UTC.txt").write_text("no tags here at all", encoding="utf-8")
    # same shortcode downloaded again in another folder: a duplicate id
    d2 = root / "#beach"
    d2.mkdir()
    (d2 / "2019-06-01_12-00-00_UTC.jpg").write_bytes(jpeg(1))
    (d2 / "2019-06-01_12-00-00_UTC.json.xz").write_bytes(lzma.compress(json.dumps(node).encode()))
    # files instaloader also writes, which are not posts
    (d / "natgeo_123456_profile_pic.jpg").write_bytes(jpeg(50))
    (d / "2019-06-01_12-00-00_UTC.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    (d / "id").write_text("123456")
    return {"posts": {"BAAA111", "BBBB222_1", "BBBB222_2", "BBBB222_3", "natgeo/2019-06-05_11-00-00_UTC",
                      "natgeo/2019-06-06_12-00-00_UTC"}}


def _add(tar: tarfile.TarFile, name: str, data: bytes, kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.type = kind
    info.linkname = link
    info.mtime = 1_600_000_000
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def webdataset_shards(root: Path) -> dict:
    """img2dataset webdataset output: 00000.tar + 00000.parquet (+ stats), with bad members."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root.mkdir(parents=True, exist_ok=True)
    rows = []
    with tarfile.open(root / "00000.tar", "w", format=tarfile.GNU_FORMAT) as tar:
        for i in range(6):
            key = f"{i:09d}"
            caption = [f"Red bicycle #bike #city{i}", "A dog in the park", "#food #yum",
                       "lovely #cat photo", "#nofile", "caf\udcff"][i]
            meta = {"key": key, "url": f"https://example.com/{i}.jpg", "caption": caption, "status": "success",
                    "width": 96, "height": 72}
            if i == 4:  # caption/json without the image member
                _add(tar, f"{key}.txt", caption.encode())
                _add(tar, f"{key}.json", json.dumps(meta).encode())
            elif i == 5:  # invalid UTF-8 in the .txt member
                _add(tar, f"{key}.jpg", jpeg(200 + i))
                _add(tar, f"{key}.txt", b"caf\xff #coffee")
                _add(tar, f"{key}.json", json.dumps(dict(meta, caption=None)).encode())
            elif i == 3:  # no .txt member: caption comes from the json / parquet
                _add(tar, f"{key}.jpg", jpeg(200 + i))
            else:
                _add(tar, f"{key}.jpg", jpeg(200 + i))
                _add(tar, f"{key}.txt", caption.encode())
                _add(tar, f"{key}.json", json.dumps(meta).encode())
            rows.append({"key": key, "url": meta["url"], "caption": caption.encode("utf-8", "replace").decode("utf-8", "replace"),
                         "status": "success", "error_message": None, "width": 96, "height": 72})
        # hostile members: absolute path, parent traversal, symlink and hardlink
        _add(tar, "/etc/evil.jpg", jpeg(300))
        _add(tar, "../../escape.txt", b"#escape")
        _add(tar, "000000010.jpg", b"", tarfile.SYMTYPE, "/etc/passwd")
        _add(tar, "000000011.jpg", b"", tarfile.LNKTYPE, "000000000.jpg")
        # a non-image with an image extension, a decompression bomb
        _add(tar, "000000012.jpg", b"<html>404 not found</html>")
        _add(tar, "000000012.txt", b"#broken")
        _add(tar, "000000013.png", bomb_png())
        _add(tar, "000000013.txt", b"#bomb")
    rows += [{"key": "000000014", "url": "https://example.com/x.jpg", "caption": "#gone", "status": "failed_to_download",
              "error_message": "HTTP 404", "width": None, "height": None}]
    # the caption of sample 3 also lives in the parquet
    pq.write_table(pa.Table.from_pylist(rows), root / "00000.parquet")
    (root / "00000_stats.json").write_text(json.dumps({"count": 15, "successes": 14}))
    # a second, truncated tar
    good = io.BytesIO()
    with tarfile.open(fileobj=good, mode="w") as tar:
        _add(tar, "000010000.jpg", jpeg(400))
        _add(tar, "000010000.txt", b"#first #ok")
        _add(tar, "000010001.jpg", jpeg(401, (300, 200)))
        _add(tar, "000010001.txt", b"#second")
    data = good.getvalue()
    (root / "00001.tar").write_bytes(data[: 512 * 3 + len(jpeg(400)) + 1024 + 700])
    return {"posts": {"000000000", "000000002", "000000003", "000000005", "000010000"}}


YFCC_HEADER_25 = ("line", "id", "hash", "user", "nick", "taken", "uploaded", "device", "title", "description",
                  "user_tags", "machine_tags", "lon", "lat", "acc", "page", "download", "license", "license_url",
                  "server", "farm", "secret", "secret_orig", "ext", "marker")


def yfcc_line(**fields: str) -> str:
    cols = {k: "" for k in YFCC_HEADER_25}
    cols.update(fields)
    return "\t".join(cols[k] for k in YFCC_HEADER_25)


def yfcc_dataset(root: Path) -> dict:
    """A yfcc100m_dataset excerpt (25 tab-separated fields) plus downloaded images."""
    images = root / "images"
    images.mkdir(parents=True)
    lines = []
    # photo found as <id>.jpg; URL-encoded tags with '+' for spaces and %-escapes
    (images / "6985418911.jpg").write_bytes(jpeg(500))
    lines.append(yfcc_line(line="0", id="6985418911", hash="4e2f7a5f3e8a2f1d9c6b7a5e4d3c2b1a", user="12345@N00",
                           title="Golden+Gate", description="A+foggy+morning+%26+a+bridge",
                           user_tags="golden+gate+bridge,san+francisco,caf%C3%A9,fog",
                           download="http://farm8.staticflickr.com/7/6985418911_ab12cd34ef.jpg",
                           license="Attribution-NonCommercial+License", ext="jpg", marker="0"))
    # photo found under the Multimedia Commons hash layout
    h = "00024a73d1a4c32fb29732d56a2"
    (images / h[:3] / h[3:6]).mkdir(parents=True)
    (images / h[:3] / h[3:6] / f"{h}.jpg").write_bytes(jpeg(501))
    lines.append(yfcc_line(line="1", id="3457721234", hash=h, user="999@N01", user_tags="dog,beach", marker="0"))
    # photo found by the download URL's basename
    (images / "111_secret.jpg").write_bytes(jpeg(502))
    lines.append(yfcc_line(line="2", id="111", hash="zz", user_tags="cat",
                           download="http://farm1.staticflickr.com/1/111_secret.jpg", marker="0"))
    # a video, a photo without file, a photo without tags, a malformed line, a corrupt image
    lines.append(yfcc_line(line="3", id="222", user_tags="video", marker="1"))
    lines.append(yfcc_line(line="4", id="333", user_tags="missing", marker="0"))
    (images / "444.jpg").write_bytes(jpeg(503))
    lines.append(yfcc_line(line="5", id="444", user_tags="", marker="0"))
    lines.append("just\tthree\tfields")
    (images / "555.jpg").write_bytes(b"GIF89a-not-really")
    lines.append(yfcc_line(line="6", id="555", user_tags="broken", marker="0"))
    (root / "yfcc100m_dataset").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"posts": {"6985418911", "3457721234", "111"}}


def manifest_inputs(root: Path) -> dict:
    """posts.jsonl and posts.csv beside an img/ folder, with bad rows."""
    img = root / "img"
    img.mkdir(parents=True)
    for i in range(4):
        (img / f"p{i}.jpg").write_bytes(jpeg(600 + i))
    (img / "alpha.png").write_bytes(odd_images()["alpha.png"])
    (img / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    rows = [
        {"id": "j0", "image": "img/p0.jpg", "caption": "hello #world #Hello"},
        {"id": "j1", "image": "img/p1.jpg", "tags": ["explicit", "tags"]},
        {"id": "j2", "image": "img/alpha.png", "caption": "#transparent"},
        {"id": "j3", "image": "img/missing.jpg", "caption": "#gone"},
        {"id": "j4", "image": "../outside.jpg", "caption": "#escape"},
        {"id": "j5", "image": "/etc/passwd", "caption": "#abs"},
        {"id": "j6", "image": "img/bad.jpg", "caption": "#bad"},
        {"id": "j7", "image": "img/p2.jpg", "caption": "no hashtags"},
        {"id": "j0", "image": "img/p3.jpg", "caption": "#duplicate"},
    ]
    lines = [json.dumps(r) for r in rows]
    lines.insert(3, "{not json")
    (root / "posts.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    csv_text = ("id,image,caption,tags\n"
                "c0,img/p0.jpg,\"multi\nline #caption\",\n"
                "c1,img/p1.jpg,,\"a, b c\"\n"
                "c2,img/missing.jpg,#gone,\n"
                "c3,../x.jpg,#escape,\n")
    (root / "posts.csv").write_bytes(csv_text.encode() + b"c4,img/p3.jpg,caf\xe9 #coffee,\n")
    return {"jsonl": {"j0", "j1", "j2"}, "csv": {"c0", "c1", "c4"}}
