"""Region JPEG decoding: the same pixels as a whole decode, for every layout; clean failures."""

import io

import numpy as np
import pytest
import simplejpeg
from PIL import Image

from weaksup import augment, jpeg_region, paths


def _photo(h, w, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 255 // w), (yy * 255 // h), (xx * yy) % 256], -1)
    img = img + rng.integers(-40, 40, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _jpeg(arr, **kw):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90, **kw)
    return buf.getvalue()


@pytest.fixture(autouse=True)
def _built():
    # `make test` builds the decoder in set-up; without it these tests cannot say anything.
    assert jpeg_region.available(), jpeg_region.unavailable_reason()


LAYOUTS = {
    "420": dict(subsampling=2),
    "422": dict(subsampling=1),
    "444": dict(subsampling=0),
    "420-progressive": dict(subsampling=2, progressive=True),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("scale_num", [8, 4, 3, 1])
def test_region_is_bit_identical_to_whole_decode(layout, scale_num):
    data = _jpeg(_photo(203, 291, seed=scale_num), **LAYOUTS[layout])
    sh, sw = jpeg_region.scaled_size(203, 291, scale_num)
    whole = simplejpeg.decode_jpeg(data, colorspace="RGB", min_height=sh, min_width=sw) if scale_num < 8 \
        else simplejpeg.decode_jpeg(data, colorspace="RGB")
    assert whole.shape == (sh, sw, 3)
    rng = np.random.default_rng(0)
    boxes = [(0, 0, sw, sh), (0, 0, 1, 1), (sw - 1, sh - 1, sw, sh), (16, 16, 32, 32), (15, 17, 33, 31)]
    for _ in range(40):
        x0, x1 = sorted(rng.choice(sw + 1, 2, replace=False))
        y0, y1 = sorted(rng.choice(sh + 1, 2, replace=False))
        boxes.append((int(x0), int(y0), int(x1), int(y1)))
    for left, top, right, bottom in [b for b in boxes if b[2] <= sw and b[3] <= sh]:
        got = jpeg_region.decode_region(data, left, top, right, bottom, scale_num=scale_num, height=sh, width=sw)
        np.testing.assert_array_equal(got, whole[top:bottom, left:right], err_msg=f"box {(left, top, right, bottom)}")


def test_grayscale_decodes_to_rgb():
    gray = _photo(60, 80)[:, :, 0]
    data = _jpeg(gray)
    got = jpeg_region.decode_region(data, 5, 7, 50, 40, height=60, width=80)
    want = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))[7:40, 5:50]
    np.testing.assert_array_equal(got, want)


def test_bad_input_is_a_region_decode_error():
    data = _jpeg(_photo(64, 64))
    with pytest.raises(jpeg_region.RegionDecodeError, match="outside"):
        jpeg_region.decode_region(data, 0, 0, 65, 10, height=64, width=64)
    # A truncated file: libjpeg-turbo's "premature end" warning is an error here.
    with pytest.raises(jpeg_region.RegionDecodeError, match="(?i)premature|corrupt|end"):
        jpeg_region.decode_region(data[: len(data) // 2], 0, 0, 64, 64, height=64, width=64)
    with pytest.raises(jpeg_region.RegionDecodeError):
        jpeg_region.decode_region(b"\xff\xd8\xff not a jpeg", 0, 0, 4, 4, height=8, width=8)
    cmyk = io.BytesIO()
    Image.fromarray(_photo(32, 32)).convert("CMYK").save(cmyk, "JPEG")
    with pytest.raises(jpeg_region.RegionDecodeError):
        jpeg_region.decode_region(cmyk.getvalue(), 0, 0, 8, 8, height=32, width=32)


@pytest.mark.parametrize("fmt", ["jpeg", "cmyk-jpeg", "png"])
def test_decode_box_same_with_and_without_the_region_decoder(fmt, monkeypatch):
    img = _photo(300, 420, seed=3)
    if fmt == "jpeg":
        data = _jpeg(img)
    else:
        buf = io.BytesIO()
        (Image.fromarray(img).convert("CMYK") if fmt == "cmyk-jpeg" else Image.fromarray(img)).save(
            buf, "JPEG" if fmt == "cmyk-jpeg" else "PNG")
        data = buf.getvalue()
    rng = np.random.default_rng(1)
    boxes = [augment.random_resized_crop_box(300, 420, rng.random(augment.CROP_DRAWS)) for _ in range(20)] + [(0.4, 2.6, 419.5, 300.0)]
    for min_side in (0, 32, 64):
        fast = [augment.decode_box(data, box, min_side) for box in boxes]
        with monkeypatch.context() as m:
            m.setattr(jpeg_region, "available", lambda: False)
            slow = [augment.decode_box(data, box, min_side) for box in boxes]
        for box, a, b in zip(boxes, fast, slow):
            np.testing.assert_array_equal(a, b, err_msg=f"{fmt} box {box} min_side {min_side}")
        if min_side == 64 and fmt == "jpeg":
            # a box 300 px a side decodes at a reduced DCT scale (2/8), still >= 64 px a side
            small = augment.decode_box(data, (0, 0, 300, 300), 64)
            assert small.shape == (75, 75, 3)


def test_dct_scale_matches_simplejpeg():
    # decode_box's region path picks the scale itself; it must be simplejpeg's choice.
    for h, w in [(375, 500), (1200, 1600), (1000, 999), (513, 700)]:
        data = simplejpeg.encode_jpeg(np.zeros((h, w, 3), np.uint8))
        for min_side in (32, 100, 224, 300):
            for frac in (0.2, 0.5, 0.9, 1.0):
                n = augment._dct_scale(h, w, min_side, frac)
                got = augment.decode(data, min_side=min_side, crop_fraction=frac).shape[:2]
                assert jpeg_region.scaled_size(h, w, n) == got, (h, w, min_side, frac)


def test_not_built_is_reported_not_fatal(monkeypatch, tmp_path):
    monkeypatch.setattr(jpeg_region, "library_path", lambda: tmp_path / "missing.so")
    monkeypatch.setattr(jpeg_region, "_LIB", None)
    monkeypatch.setattr(jpeg_region, "_LOAD_ERROR", None)
    assert not jpeg_region.available()
    assert "missing.so is not built" in jpeg_region.unavailable_reason()
    with pytest.raises(jpeg_region.RegionDecodeError, match="unavailable"):
        jpeg_region.decode_region(_jpeg(_photo(8, 8)), 0, 0, 8, 8, height=8, width=8)
    # and the crops still work, through the whole-picture decode
    out = augment.train_crop(_jpeg(_photo(64, 64)), 16, np.random.default_rng(0).random(augment.TRAIN_DRAWS))
    assert out.shape == (16, 16, 3)


def test_build_is_atomic_and_keyed_by_source(monkeypatch, tmp_path):
    # (the loaded library is this module's state: restored after the test)
    monkeypatch.setattr(jpeg_region, "_LIB", None)
    monkeypatch.setattr(jpeg_region, "_LOAD_ERROR", None)
    src = tmp_path / "jpeg_region.c"
    src.write_bytes(jpeg_region.SOURCE.read_bytes())
    monkeypatch.setattr(jpeg_region, "SOURCE", src)
    monkeypatch.setattr(paths, "cache_dir", lambda: tmp_path / "cache")
    first = jpeg_region.build()
    assert first.exists() and first.parent == tmp_path / "cache" / "native"
    assert jpeg_region.available()
    src.write_text(src.read_text() + "\n/* changed */\n")
    assert jpeg_region.library_path() != first
    src.write_text("this is not C\n")
    with pytest.raises(jpeg_region.BuildError, match="failed"):
        jpeg_region.build()
    # nothing half-written left next to the good build
    assert sorted(p.name for p in first.parent.iterdir()) == [first.name]
