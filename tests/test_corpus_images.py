"""Image validation and normalisation: every oddity is normalised to 8-bit RGB or skipped."""

import io

import numpy as np
import pytest
from PIL import Image

from corpus_inputs import ODD_REASONS, jpeg, odd_images
from weaksup.corpus.images import ImageError, check_image


def test_clean_rgb_jpeg_and_png_kept_byte_for_byte():
    data = jpeg(1)
    c = check_image(data)
    assert c.data == data and not c.reencoded and c.format == "JPEG"
    assert (c.width, c.height) == (96, 72)
    png = io.BytesIO()
    Image.open(io.BytesIO(data)).save(png, "PNG")
    c = check_image(png.getvalue())
    assert c.data == png.getvalue() and not c.reencoded and c.format == "PNG"


@pytest.mark.parametrize("name", sorted(set(odd_images()) - set(ODD_REASONS)))
def test_odd_images_normalised_to_rgb(name):
    data = odd_images()[name]
    c = check_image(data)
    assert c.reencoded
    out = Image.open(io.BytesIO(c.data))
    assert out.mode == "RGB" and out.format in ("JPEG", "PNG")
    assert out.size == (c.width, c.height)
    # lossless sources stay lossless
    if not name.endswith(".jpg"):
        assert out.format == "PNG"


def test_alpha_composited_on_white():
    im = Image.new("RGBA", (16, 16), (255, 0, 0, 0))
    b = io.BytesIO()
    im.save(b, "PNG")
    c = check_image(b.getvalue())
    assert np.asarray(Image.open(io.BytesIO(c.data)))[0, 0].tolist() == [255, 255, 255]


def test_16bit_grey_uses_full_range():
    a = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    b = io.BytesIO()
    Image.fromarray(a).save(b, "PNG")
    out = np.asarray(Image.open(io.BytesIO(check_image(b.getvalue()).data)))
    assert out.min() == 0 and out.max() == 255  # scaled, not clipped at 255/65535


@pytest.mark.parametrize("name,reason", sorted(ODD_REASONS.items()))
def test_bad_images_raise_reason(name, reason):
    with pytest.raises(ImageError) as e:
        check_image(odd_images()[name])
    assert e.value.reason == reason


def test_pixel_limit_is_configurable():
    data = jpeg(2, (200, 100))
    check_image(data, max_pixels=20_000)
    with pytest.raises(ImageError, match="too_many_pixels"):
        check_image(data, max_pixels=19_999)


def test_tiny_image_skipped():
    with pytest.raises(ImageError, match="too_small"):
        check_image(jpeg(3, (4, 40)))
