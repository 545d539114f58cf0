"""Near-duplicate filter: pHash robustness and the multi-index Hamming lookup."""

import io

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from corpus_inputs import picture
from weaksup.corpus.dedup import (
    HashIndex,
    hamming,
    phash,
    reference_hashes,
    reference_hashes_of,
)


def _jpeg(im, q):
    b = io.BytesIO()
    im.save(b, "JPEG", quality=q)
    return Image.open(io.BytesIO(b.getvalue()))


EDITS = {
    "resized_down": lambda im: im.resize((im.width // 2, im.height // 2)),
    "resized_up": lambda im: im.resize((im.width * 3, im.height * 3), Image.Resampling.BICUBIC),
    "jpeg_q25": lambda im: _jpeg(im, 25),
    "crop_5pct_centre": lambda im: im.crop((6, 4, im.width - 6, im.height - 4)),
    "crop_6pct_corner": lambda im: im.crop((0, 0, im.width - 7, im.height - 5)),
    "crop_uneven": lambda im: im.crop((3, 5, im.width - 7, im.height - 2)),
    "desaturated": lambda im: ImageEnhance.Color(im).enhance(0.3),
    "greyscale": lambda im: im.convert("L").convert("RGB"),
    "contrast": lambda im: ImageEnhance.Contrast(im).enhance(0.75),
    "brighter": lambda im: ImageEnhance.Brightness(im).enhance(1.1),
}


@pytest.fixture(scope="module")
def references():
    ims = [picture(1000 + i, (128, 96)) for i in range(40)]
    return ims, HashIndex([h for im in ims for h in reference_hashes_of(im)], threshold=10)


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_edited_copies_caught(references, edit):
    ims, index = references
    caught = [index.contains_near(phash(EDITS[edit](im))) for im in ims]
    assert all(caught), f"{edit}: missed {caught.count(False)} of {len(ims)}"


def test_distinct_images_kept(references):
    _, index = references
    others = [picture(5000 + i, (128, 96)) for i in range(200)]
    kept = [not index.contains_near(phash(im)) for im in others]
    assert sum(kept) >= 198  # at most 1% false matches between unrelated pictures


def test_phash_of_bytes_and_image_agree():
    im = picture(3)
    b = io.BytesIO()
    im.save(b, "PNG")
    assert phash(b.getvalue()) == phash(im)
    assert hamming(phash(im), phash(picture(4))) > 10


@pytest.mark.parametrize("threshold", [0, 3, 10, 13])
def test_index_matches_brute_force(threshold):
    rng = np.random.default_rng(threshold)
    refs = rng.integers(0, 2**63, 3000, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 3000, dtype=np.uint64)
    queries = []
    for i in range(400):
        h = int(refs[i])
        for b in rng.choice(64, size=int(rng.integers(0, 20)), replace=False):
            h ^= 1 << int(b)
        queries.append(h)
    queries += rng.integers(0, 2**63, 100, dtype=np.uint64).tolist()
    index = HashIndex(refs, threshold=threshold, exhaustive_below=0)  # the multi-index path
    got = index.min_distances(np.asarray(queries, dtype=np.uint64))
    want = []
    for q in queries:  # brute force: every pair
        d = int(np.bitwise_count(refs ^ np.uint64(q)).min())
        want.append(d if d <= threshold else -1)
    assert got.tolist() == want
    assert HashIndex(refs, threshold=threshold).min_distances(np.asarray(queries, dtype=np.uint64)).tolist() == want


def test_reference_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    picture(1).save(tmp_path / "a.jpg")
    picture(2).save(tmp_path / "sub" / "b.png")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "broken.jpg").write_bytes(b"nope")
    hashes = reference_hashes(str(tmp_path))
    assert len(hashes) == 2 * len(reference_hashes_of(picture(1)))
    with pytest.raises(FileNotFoundError, match="not a folder"):
        reference_hashes(str(tmp_path / "missing"))
