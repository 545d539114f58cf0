"""TFDS evaluation and fine-tuning batches: padding and masks, process parts, resume, errors."""

import warnings

import numpy as np
import pytest

import tiny_tfds
from weaksup import input_pipeline as ip


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tfds")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tiny_tfds.build(d)
    return d


_TARGET_FIELDS = ("dataset", "data_dir", "batch_size", "image_size", "image_key", "label_key", "seed")


def _target(data_dir, **kw):
    fields = dict(dataset=tiny_tfds.NAME, data_dir=str(data_dir), batch_size=4, image_size=16)
    fields.update({k: v for k, v in kw.items() if k in _TARGET_FIELDS})
    return ip.Target(**fields), {k: v for k, v in kw.items() if k not in _TARGET_FIELDS}


def _eval(data_dir, split="test", **kw):
    target, rest = _target(data_dir, **kw)
    return list(ip.make_eval_iterator(target, split, **{"process_index": 0, "process_count": 1, **rest}))


def test_eval_batches_are_static_and_masked(data_dir):
    batches = _eval(data_dir)
    assert len(batches) == 3  # 11 examples -> 4 + 4 + 3 real, 1 padded
    for b in batches:
        assert b["image"].shape == (4, 16, 16, 3) and b["image"].dtype == np.uint8
        assert b["label"].dtype == np.int32 and b["mask"].dtype == np.bool_
    mask = np.concatenate([b["mask"] for b in batches])
    labels = np.concatenate([b["label"] for b in batches])
    assert mask.tolist() == [True] * 11 + [False]
    assert labels[:11].tolist() == [i % 3 for i in range(11)]
    # The pixels carry the label: the decoded, cropped picture is the class's grey.
    images = np.concatenate([b["image"] for b in batches])
    for img, label in zip(images[:11], labels[:11]):
        assert abs(int(img.mean()) - tiny_tfds.grey_of(int(label))) <= 3
    assert images[11].max() == 0


def test_eval_processes_cover_the_split_once_with_equal_batch_counts(data_dir):
    parts = [_eval(data_dir, batch_size=4, process_index=p, process_count=2) for p in range(2)]
    assert len(parts[0]) == len(parts[1]) == 3  # ceil(ceil(11 / 2) / 2)
    labels = [np.concatenate([b["label"][b["mask"]] for b in part]) for part in parts]
    assert labels[0].size + labels[1].size == 11
    assert np.concatenate(labels).tolist() == [i % 3 for i in range(11)]


def test_unknown_dataset_split_or_key_is_named(data_dir):
    with pytest.raises(ip.EvalDataError, match="no_such_dataset"):
        _eval(data_dir, dataset="no_such_dataset")
    with pytest.raises(ip.EvalDataError, match="'picture'"):
        _eval(data_dir, image_key="picture")
    with pytest.raises(ip.EvalDataError, match="'fine_label'"):
        _eval(data_dir, label_key="fine_label")
    with pytest.raises(ip.EvalDataError, match="no split 'validation'"):
        _eval(data_dir, split="validation")


def _finetune(data_dir, **kw):
    target, rest = _target(data_dir, **{"image_size": 12, "seed": 3, **kw})
    return ip.make_finetune_iterator(target, **{"process_index": 0, "process_count": 1, **rest})


def test_finetune_iterator_shuffles_repeats_and_resumes(data_dir):
    it = _finetune(data_dir)
    first = [next(it) for _ in range(3)]  # exactly one epoch of 12
    labels = np.concatenate([b["label"] for b in first])
    assert sorted(labels.tolist()) == sorted(i % 3 for i in range(12))
    assert labels.tolist() != [i % 3 for i in range(12)]  # shuffled
    state = it.get_state()
    later = [next(it) for _ in range(4)]  # into the second and third epochs
    again = _finetune(data_dir)
    again.set_state(state)
    for a, b in zip(later, [next(again) for _ in range(4)]):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])
    assert first[0]["image"].shape == (4, 12, 12, 3)


def test_finetune_crop_min_area_reaches_the_crop_and_is_validated(data_dir, monkeypatch):
    # Only crops of this test's own size count: prefetch threads of iterators from other
    # tests may still be cropping (at the default area) while the spy is installed.
    size = 10
    seen = []
    for name in ("train_crop", "train_crop_array"):
        real = getattr(ip.augment, name)

        def spy(img, out_size, rng, min_area=0.08, _real=real):
            if out_size == size:
                seen.append(min_area)
            return _real(img, out_size, rng, min_area)

        monkeypatch.setattr(ip.augment, name, spy)
    next(_finetune(data_dir, crop_min_area=0.5, image_size=size))
    assert seen and set(seen) == {0.5}
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="crop_min_area"):
            _finetune(data_dir, crop_min_area=bad)
