"""Decoding and crops: formats, reduced-scale JPEG decoding, crop geometry, determinism."""

import io

import numpy as np
import pytest
from PIL import Image

from weaksup import augment


def _encode(arr, fmt, **kw):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **kw)
    return buf.getvalue()


def _photo(h, w, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 255 // w), (yy * 255 // h), np.full_like(xx, 128)], -1)
    img = img + rng.integers(-10, 10, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_png_alpha_is_composited_on_white():
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:4, :, :] = (255, 0, 0, 255)  # top half opaque red, bottom half transparent
    out = augment.decode(_encode(rgba, "PNG"))
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    assert tuple(out[0, 0]) == (255, 0, 0)
    assert tuple(out[7, 7]) == (255, 255, 255)


def test_grayscale_and_jpeg_decode_to_rgb():
    gray = _photo(40, 50)[:, :, 0]
    assert augment.decode(_encode(gray, "JPEG")).shape == (40, 50, 3)
    assert augment.decode(_encode(gray, "PNG")).shape == (40, 50, 3)
    photo = _photo(60, 80)
    dec = augment.decode(_encode(photo, "JPEG", quality=95))
    assert dec.shape == (60, 80, 3)
    assert np.abs(dec.astype(int) - photo).mean() < 6


def test_large_jpeg_decodes_at_reduced_scale_but_never_below_need():
    data = _encode(_photo(1200, 1600), "JPEG")
    small = augment.decode(data, min_side=224, crop_fraction=1.0)
    assert small.shape[0] < 1200 and min(small.shape[:2]) >= 224
    # A crop of half the side still needs 224 px, so the picture must stay >= 448 px.
    half = augment.decode(data, min_side=224, crop_fraction=0.5)
    assert min(half.shape[:2]) >= 448
    assert augment.decode(data).shape == (1200, 1600, 3)


def test_undecodable_bytes_raise_decode_error():
    with pytest.raises(augment.DecodeError):
        augment.decode(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(augment.DecodeError):
        augment.decode(b"GIF89a garbage")


def test_random_resized_crop_box_stays_inside_and_respects_ranges():
    rng = np.random.default_rng(0)
    for _ in range(200):
        l, t, r, b = augment.random_resized_crop_box(375, 500, rng.random(augment.CROP_DRAWS))
        assert 0 <= l < r <= 500 and 0 <= t < b <= 375
        area = (r - l) * (b - t) / (375 * 500)
        assert 0.07 <= area <= 1.0
        assert 3 / 4 - 0.02 <= (r - l) / (b - t) <= 4 / 3 + 0.02


def test_train_crop_is_deterministic_given_draws_and_varies_across_draws():
    data = _encode(_photo(375, 500), "JPEG")
    a = augment.train_crop(data, 32, np.random.default_rng([1, 2, 3]).random(augment.TRAIN_DRAWS))
    b = augment.train_crop(data, 32, np.random.default_rng([1, 2, 3]).random(augment.TRAIN_DRAWS))
    c = augment.train_crop(data, 32, np.random.default_rng([1, 2, 4]).random(augment.TRAIN_DRAWS))
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_eval_crop_takes_the_centre():
    img = np.zeros((100, 200, 3), np.uint8)
    # White left band lies outside the centre crop [50, 150) of the 100-px side, with a
    # margin wider than the resampling filter's reach (~6 px at this scale).
    img[:, :40] = 255
    out = augment.eval_crop(_encode(img, "PNG"), 16, crop_fraction=1.0)
    assert out.shape == (16, 16, 3)
    assert out.max() == 0
    full = augment.center_crop(img, 16, crop_fraction=1.0)
    np.testing.assert_array_equal(out, full)


def test_train_crop_min_area_bounds_the_crop():
    """With min_area=1 on a square picture the crop is the whole picture (up to the flip)."""
    img = _photo(64, 64)
    data = _encode(img, "PNG")
    whole = augment.train_crop(data, 64, np.random.default_rng(0).random(augment.TRAIN_DRAWS), min_area=1.0)
    assert np.array_equal(whole, img) or np.array_equal(whole, img[:, ::-1])
    whole = augment.train_crop_array(img, 64, np.random.default_rng(0).random(augment.TRAIN_DRAWS), min_area=1.0)
    assert np.array_equal(whole, img) or np.array_equal(whole, img[:, ::-1])
    rng = np.random.default_rng(1)
    for _ in range(100):
        l, t, r, b = augment.random_resized_crop_box(64, 64, rng.random(augment.CROP_DRAWS), area=(0.35, 1.0))
        assert (r - l) * (b - t) / 64**2 >= 0.33
    # and the default still reaches small crops
    areas = [(r - l) * (b - t) / 64**2
             for l, t, r, b in (augment.random_resized_crop_box(64, 64, rng.random(augment.CROP_DRAWS)) for _ in range(200))]
    assert min(areas) < 0.2


def test_train_draws_are_uniform_and_depend_only_on_their_position():
    epochs, positions = np.repeat([0, 1], 5000), np.tile(np.arange(5000), 2)
    u = augment.train_draws(7, epochs, positions)
    assert u.shape == (10_000, augment.TRAIN_DRAWS) and u.dtype == np.float64
    assert u.min() >= 0.0 and u.max() < 1.0
    # One position's draws alone are the same as within a batch of them.
    np.testing.assert_array_equal(augment.train_draws(7, [1], [123])[0], u[5123])
    # Other seeds, epochs and positions draw other numbers.
    assert not np.array_equal(augment.train_draws(8, [1], [123])[0], u[5123])
    assert not np.array_equal(u[123], u[5123]) and not np.array_equal(u[123], u[124])
    # Uniform in each draw (10 bins of 1000 expected: 4 sigma is 120), and draws uncorrelated.
    for k in range(augment.TRAIN_DRAWS):
        counts = np.bincount((u[:, k] * 10).astype(int), minlength=10)
        assert np.abs(counts - 1000).max() < 120, (k, counts)
    corr = np.corrcoef(u.T)
    assert np.abs(corr - np.eye(augment.TRAIN_DRAWS)).max() < 0.05
    # Neighbouring positions are uncorrelated too.
    assert abs(np.corrcoef(u[:-1, 0], u[1:, 0])[0, 1]) < 0.05
