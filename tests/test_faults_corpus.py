"""Faults and hostile input on the corpus side: broken shards, edited manifests, paths that
lead out of the input, FIFOs and devices, a full disk, truncated archives, empty inputs,
a busy output folder, and hashtag letters that must not be respelt.

Each case checks the exit status, that the message names the file and the problem, and
that nothing was lost (the previous corpus still reads, no spill or temp file is left).
A full disk is real where it can be without root (the ArrayRecord writer aimed at
/dev/full) and a patched writer raising ENOSPC elsewhere.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

import corpus_inputs
from hashtag_corpus import write_corpus
from weaksup import atomic
from weaksup.corpus import cli, confine, pipeline
from weaksup.corpus.shards import MANIFEST, Corpus, CorpusError, file_sha256
from weaksup.corpus.sources.base import get_source
from weaksup.errors import EXIT_IO_ERROR, UsageError
from weaksup.hashtags import vocab_cli
from weaksup.hashtags.normalize import hashtag_words, normalize_hashtag, strip_accents

POSTS = [["dog"], ["cat", "dog"], ["beach"], ["sunset", "beach"]] * 10


@pytest.fixture(scope="module")
def good_corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("good") / "corpus", POSTS, num_shards=2)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _read_all(path: Path) -> list[str]:
    with Corpus(path) as c:
        return sorted(p.id for p in c)


def _vocab(corpus: Path, out: Path, capsys) -> tuple[int, str]:
    code = vocab_cli.main(["build", "--corpus", str(corpus), "--mode", "raw", "--min-count", "1",
                           "--output", str(out)])
    return code, capsys.readouterr().err


# --- 6: a shard of garbage bytes of the right size ---------------------------------------

def test_garbage_shard_is_named_everywhere(good_corpus, tmp_path, capsys):
    from weaksup.evaluators.holdout import load_holdout

    vocab = tmp_path / "vocab.json"
    assert _vocab(good_corpus, vocab, capsys)[0] == 0
    bad = _copy(good_corpus, tmp_path / "bad")
    shard = min(bad.glob("posts-*"))
    original = shard.read_bytes()
    shard.write_bytes(os.urandom(len(original)))  # same size: the manifest's size check passes
    with pytest.raises(CorpusError, match=rf"shard {shard}: not a readable ArrayRecord file"):
        Corpus(bad)
    code, err = _vocab(bad, tmp_path / "v2.json", capsys)
    assert code == 2
    assert str(shard) in _one_line(err) and "not a readable ArrayRecord file" in err
    assert not (tmp_path / "v2.json").exists()
    # the held-out set of a training run: a UsageError (exit 2 through the runner), named
    with pytest.raises(UsageError, match=rf"shard {shard}: not a readable ArrayRecord file"):
        load_holdout(bad, vocab, num_records=8, image_size=16, max_labels=4, local_batch=4)
    # nothing else was touched: with the shard restored the corpus reads in full
    shard.write_bytes(original)
    assert Corpus(bad).verify()["ok"] and _read_all(bad) == _read_all(good_corpus)


def test_corrupt_record_inside_a_shard_is_named(good_corpus, tmp_path):
    """A shard whose footer is intact but whose records are damaged: the read names shard and record."""
    from weaksup.evaluators.holdout import held_out_crops

    bad = _copy(good_corpus, tmp_path / "bad")
    shard = max(bad.glob("posts-*"))
    data = bytearray(shard.read_bytes())
    data[100:4000] = os.urandom(3900)  # the first records' chunks, not the footer
    shard.write_bytes(bytes(data))
    # record counts come from the footer: opening still works, reading names the record
    with Corpus(bad) as c, pytest.raises(CorpusError, match=rf"shard {shard}: record \d+"):
        held_out_crops(c, len(c), 16)


def test_corrupt_record_read_by_training_names_the_shard(good_corpus, tmp_path):
    """The record source training and label caching read (grain) names the shard too."""
    bad = _copy(good_corpus, tmp_path / "bad")
    shard = max(bad.glob("posts-*"))
    data = bytearray(shard.read_bytes())
    data[100:4000] = os.urandom(3900)
    shard.write_bytes(bytes(data))
    with Corpus(bad) as c:
        source = c.data_source()
        first = len(source) - c.shards[-1].records  # the damaged shard's first record
        with pytest.raises(CorpusError, match=rf"shard {shard} record 0: unreadable record"):
            source[first]
        with pytest.raises(CorpusError, match=rf"shard {shard}"):
            source.__getitems__([0, first])
        assert source[0] == Corpus(good_corpus).data_source()[0]  # the intact shard still reads


def test_unknown_beam_runner_is_a_usage_error(tmp_path, capsys):
    inp = _jsonl_input(tmp_path / "in")
    assert cli.main(_build_args(inp, tmp_path / "out", "--runner", "bogus")) == 2
    line = _one_line(capsys.readouterr().err)
    assert "--runner bogus" in line and "Unexpected pipeline runner" in line
    assert not (tmp_path / "out").exists()


# --- 7: record counts in the manifest edited ----------------------------------------------

@pytest.mark.parametrize("delta", [+5, -5])
def test_edited_record_counts_fail_on_open(good_corpus, tmp_path, capsys, delta):
    bad = _copy(good_corpus, tmp_path / "bad")
    m = json.loads((bad / MANIFEST).read_text())
    real = m["shards"][0]["records"]
    m["shards"][0]["records"] = real + delta
    (bad / MANIFEST).write_text(json.dumps(m))
    shard = bad / m["shards"][0]["name"]
    msg = rf"shard {shard}: {real} records, manifest says {real + delta}"
    with pytest.raises(CorpusError, match=msg):
        Corpus(bad)
    code, err = _vocab(bad, tmp_path / "v.json", capsys)
    assert code == 2 and f"{real} records, manifest says {real + delta}" in _one_line(err)
    assert str(shard) in err
    # the shards themselves are intact
    m["shards"][0]["records"] = real
    (bad / MANIFEST).write_text(json.dumps(m))
    assert _read_all(bad) == _read_all(good_corpus)


# --- 8: paths that lead out of the input, FIFOs and devices --------------------------------

def _hostile(folder: Path, outside: Path) -> dict[str, str]:
    """Symlinks out of `folder` and special files, by name; returns {name: expected skip}."""
    os.symlink(outside, folder / "escape.jpg")
    os.symlink("/etc/passwd", folder / "passwd.jpg")
    os.symlink("/dev/zero", folder / "zero.jpg")
    os.mkfifo(folder / "fifo.jpg")
    return {"escape.jpg": "unsafe_path", "passwd.jpg": "unsafe_path", "zero.jpg": "unsafe_path",
            "fifo.jpg": "not_a_file"}


def _read_source(name: str, input: Path, **options) -> list:
    """Every item the source yields, read in a thread: a FIFO that blocks fails the test, never hangs it."""
    items: list = []

    def run() -> None:
        src = get_source(name, str(input), **options)
        for unit in src.work_units():
            items.extend(src.read(unit))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), f"{name}: reading blocked (a FIFO or device was opened)"
    return items


def _skips(items: list) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for it in items:
        if hasattr(it, "reason"):
            out.setdefault(it.reason, []).append(it.item)
    return out


@pytest.fixture()
def opened(monkeypatch) -> list[str]:
    """Paths opened through os.open (how corpus sources open input files) during the test."""
    seen: list[str] = []
    real = os.open

    def spy(path, *a, **k):
        seen.append(os.fspath(path))
        return real(path, *a, **k)

    monkeypatch.setattr(confine.os, "open", spy)
    return seen


def test_manifest_sources_refuse_escaping_and_special_files(tmp_path, opened):
    root = tmp_path / "in"
    (root / "img").mkdir(parents=True)
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(corpus_inputs.jpeg(1))
    expected = _hostile(root / "img", outside)
    (root / "img" / "ok.jpg").write_bytes(corpus_inputs.jpeg(2))
    os.symlink("ok.jpg", root / "img" / "inside.jpg")  # a symlink within the input is fine
    names = [*expected, "ok.jpg", "inside.jpg"]
    rows = [{"id": n.split(".")[0], "image": f"img/{n}", "tags": ["x"]} for n in names]
    (root / "posts.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (root / "posts.csv").write_text("id,image,tags\n" + "".join(f"{r['id']},{r['image']},x\n" for r in rows))
    for name, path in (("jsonl", root / "posts.jsonl"), ("csv", root / "posts.csv")):
        items = _read_source(name, path)
        posts = sorted(it.id for it in items if not hasattr(it, "reason"))
        assert posts == ["inside", "ok"], name
        skips = _skips(items)
        assert {r: len(v) for r, v in skips.items()} == {"unsafe_path": 3, "not_a_file": 1}, name
        assert any("escape.jpg" in s for s in skips["unsafe_path"])
    assert not any(p.endswith(("escape.jpg", "passwd.jpg", "zero.jpg", "fifo.jpg")) or p in (
        "/etc/passwd", "/dev/zero", str(outside)) for p in opened), opened
    # allow_outside lets a path out of the folder (the user's choice), but a device or FIFO
    # is still never opened
    items = _read_source("jsonl", root / "posts.jsonl", allow_outside=True)
    assert sorted(it.id for it in items if not hasattr(it, "reason")) == ["escape", "inside", "ok", "passwd"]
    assert _skips(items) == {"not_a_file": ["zero: img/zero.jpg", "fifo: img/fifo.jpg"]}


def test_manifest_file_itself_may_not_escape(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    elsewhere = tmp_path / "elsewhere.jsonl"
    elsewhere.write_text(json.dumps({"id": "a", "image": "a.jpg", "tags": ["x"]}) + "\n")
    os.symlink(elsewhere, root / "linked.jsonl")
    os.mkfifo(root / "pipe.jsonl")
    skips = _skips(_read_source("jsonl", root))
    assert skips == {"unsafe_path": ["linked.jsonl"], "not_a_file": ["pipe.jsonl"]}


def test_instaloader_refuses_escaping_and_special_files(tmp_path, opened):
    root = tmp_path / "insta"
    d = root / "profile"
    d.mkdir(parents=True)
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(corpus_inputs.jpeg(3))
    (d / "2020-01-01_00-00-00_UTC.jpg").write_bytes(corpus_inputs.jpeg(4))
    stems = ["2020-01-02_00-00-00_UTC", "2020-01-03_00-00-00_UTC", "2020-01-04_00-00-00_UTC",
             "2020-01-05_00-00-00_UTC"]
    os.symlink(outside, d / f"{stems[0]}.jpg")
    os.symlink("/etc/passwd", d / f"{stems[1]}.txt")
    (d / f"{stems[1]}.jpg").write_bytes(corpus_inputs.jpeg(5))
    os.mkfifo(d / f"{stems[2]}.jpg")
    os.symlink("/dev/zero", d / f"{stems[3]}.json")
    (d / f"{stems[3]}.jpg").write_bytes(corpus_inputs.jpeg(6))
    for s in ["2020-01-01_00-00-00_UTC", stems[0], stems[2], stems[3]]:
        (d / f"{s}.txt").write_text("#dog #park")
    items = _read_source("instaloader", root)
    posts = sorted(it.id for it in items if not hasattr(it, "reason"))
    assert posts == ["profile/2020-01-01_00-00-00_UTC"]
    skips = _skips(items)
    assert {r: len(v) for r, v in skips.items()} == {"unsafe_path": 3, "not_a_file": 1}
    refused = (f"{stems[0]}.jpg", f"{stems[1]}.txt", f"{stems[2]}.jpg", f"{stems[3]}.json")
    assert not any(p in ("/etc/passwd", "/dev/zero", str(outside)) or p.endswith(refused) for p in opened), opened
    assert any(p.endswith(f"{stems[2]}.txt") for p in opened)  # the spy sees what the source reads


def test_webdataset_and_yfcc_refuse_escaping_and_special_files(tmp_path, opened):
    wds = tmp_path / "wds"
    wds.mkdir()
    good = io.BytesIO()
    with tarfile.open(fileobj=good, mode="w") as tar:
        for name, data in (("0.jpg", corpus_inputs.jpeg(7)), ("0.txt", b"#ok")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (tmp_path / "outside.tar").write_bytes(good.getvalue())
    (wds / "00000.tar").write_bytes(good.getvalue())
    os.symlink(tmp_path / "outside.tar", wds / "00001.tar")
    os.mkfifo(wds / "00002.tar")
    os.mkfifo(wds / "00000.parquet")
    items = _read_source("webdataset", wds)
    assert [it.id for it in items if not hasattr(it, "reason")] == ["0"]
    assert _skips(items) == {"unsafe_path": ["00001.tar"], "not_a_file": ["00000.parquet", "00002.tar"]}

    yf = tmp_path / "yfcc"
    images = yf / "images"
    images.mkdir(parents=True)
    (images / "1.jpg").write_bytes(corpus_inputs.jpeg(8))
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(corpus_inputs.jpeg(9))
    os.symlink(outside, images / "2.jpg")
    os.symlink("/dev/zero", images / "3.jpg")
    os.mkfifo(images / "4.jpg")
    lines = [corpus_inputs.yfcc_line(line=str(i), id=str(i), hash="zz", user_tags="dog", marker="0")
             for i in range(1, 5)]
    (yf / "meta.tsv").write_text("\n".join(lines) + "\n")
    os.symlink("/etc/passwd", yf / "passwd.tsv")
    items = _read_source("yfcc", yf)
    assert [it.id for it in items if not hasattr(it, "reason")] == ["1"]
    skips = _skips(items)
    assert {r: len(v) for r, v in skips.items()} == {"unsafe_path": 3, "not_a_file": 1}
    assert "passwd.tsv" in skips["unsafe_path"]
    assert not any(p in ("/etc/passwd", "/dev/zero", str(outside), str(tmp_path / "outside.tar"))
                   or p.endswith(("00002.tar", "00000.parquet", "4.jpg")) for p in opened), opened


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside.json", "sub/../../x"])
def test_manifest_paths_confined_to_corpus_folder(good_corpus, tmp_path, capsys, name):
    bad = _copy(good_corpus, tmp_path / "bad")
    (tmp_path / "outside.json").write_text(json.dumps({"evil": 1}))
    m = json.loads((bad / MANIFEST).read_text())
    m["hashtags"]["file"] = name
    (bad / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(CorpusError, match="hashtag counts"):
        Corpus(bad).hashtag_counts()
    code, err = _vocab(bad, tmp_path / "v.json", capsys)
    assert code == 2 and name in _one_line(err)
    # a shard name that points out of the folder is refused on open
    m = json.loads((good_corpus / MANIFEST).read_text())
    m["shards"][0]["name"] = name
    (bad / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(CorpusError, match="shard"):
        Corpus(bad)


def test_hashtag_counts_symlinked_out_of_the_folder(good_corpus, tmp_path):
    bad = _copy(good_corpus, tmp_path / "bad")
    (tmp_path / "counts.json").write_text(json.dumps({"evil": 1}))
    (bad / "hashtag_counts.json").unlink()
    os.symlink(tmp_path / "counts.json", bad / "hashtag_counts.json")
    with pytest.raises(CorpusError, match="leads outside"):
        Corpus(bad).hashtag_counts()


# --- 9: a full disk during a corpus build --------------------------------------------------

def _jsonl_input(root: Path, n: int = 12, tags: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        (root / f"p{i}.jpg").write_bytes(corpus_inputs.jpeg(900 + i))
        row = {"id": f"p{i}", "image": f"p{i}.jpg"}
        row.update({"tags": ["dog", f"t{i}"]} if tags else {"caption": "no hashtags here"})
        rows.append(row)
    (root / "posts.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root / "posts.jsonl"


def _build_args(inp: Path, out: Path, *extra: str) -> list[str]:
    return ["build", "--source", "jsonl", "--input", str(inp), "--output", str(out), "--num-shards", "2",
            "--workers", "1", "--no-progress", *extra]


def _snapshot(out: Path) -> dict[str, str]:
    return {p.name: file_sha256(p) for p in sorted(out.iterdir()) if p.is_file()}


@pytest.fixture()
def previous(tmp_path, capsys) -> tuple[Path, Path, dict[str, str]]:
    """An input and a complete corpus built from it (the corpus a rebuild must not lose)."""
    inp = _jsonl_input(tmp_path / "in")
    out = tmp_path / "out"
    assert cli.main(_build_args(inp, out)) == 0
    capsys.readouterr()
    return inp, out, _snapshot(out)


def _assert_untouched(out: Path, before: dict[str, str]) -> None:
    assert _snapshot(out) == before
    assert not (out / pipeline.STAGING).exists() and not list(out.glob(".tmp-*"))
    assert len(Corpus(out)) == 12 and Corpus(out).verify()["ok"]


def test_disk_full_in_the_shard_writer(previous, monkeypatch, capsys):
    """The real ArrayRecord writer, aimed at /dev/full, fails with ENOSPC as on a full disk."""
    from array_record.python import array_record_module

    inp, out, before = previous
    real = array_record_module.ArrayRecordWriter
    monkeypatch.setattr(array_record_module, "ArrayRecordWriter", lambda path, options: real("/dev/full", options))
    assert cli.main(_build_args(inp, out, "--overwrite")) == EXIT_IO_ERROR
    line = _one_line(capsys.readouterr().err)
    assert "No space left on device (ENOSPC)" in line and "posts-" in line and "left as it was" in line
    monkeypatch.undo()
    _assert_untouched(out, before)


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(args[0]) if args else None)


def test_disk_full_in_the_spill(previous, monkeypatch, capsys):
    inp, out, before = previous
    real_open = open

    def full_open(path, mode="r", *a, **k):
        if "w" in mode and str(path).endswith(".msgpack"):
            _enospc(path)
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr(pipeline, "open", full_open, raising=False)  # the spill writer's open
    assert cli.main(_build_args(inp, out, "--overwrite")) == EXIT_IO_ERROR
    line = _one_line(capsys.readouterr().err)
    assert "No space left on device (ENOSPC) writing" in line and ".msgpack" in line
    assert "left as it was" in line
    _assert_untouched(out, before)


def test_disk_full_at_the_manifest_into_a_new_folder(tmp_path, monkeypatch, capsys):
    inp = _jsonl_input(tmp_path / "in")
    out = tmp_path / "new"

    def full_write(path, data, *, fsync=False):
        _enospc(path)

    monkeypatch.setattr(atomic, "write_bytes", full_write)  # hashtag counts and manifest
    assert cli.main(_build_args(inp, out)) == EXIT_IO_ERROR
    line = _one_line(capsys.readouterr().err)
    assert "ENOSPC" in line and "hashtag_counts.json" in line
    assert not out.exists()  # the folder the build created is gone with it


# --- 10: truncated tars, builds without records, inputs without posts ----------------------

def test_tar_truncated_in_a_member_header_counts_the_rest(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for i in range(4):
            for ext, data in (("jpg", corpus_inputs.jpeg(950 + i)), ("txt", f"#dog #n{i}".encode())):
                info = tarfile.TarInfo(f"{i:05d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        header_of_third = [m.offset for m in tar.getmembers()][4]  # 00002.jpg
    root = tmp_path / "wds"
    root.mkdir()
    (root / "00000.tar").write_bytes(buf.getvalue()[:header_of_third + 200])
    out = tmp_path / "out"
    m = pipeline.build(pipeline.BuildConfig("webdataset", str(root), num_shards=1), str(out), workers=1,
                       progress=False)
    assert m["skipped"] == {"truncated": 1}
    assert m["skipped_examples"]["truncated"] == ["00000.tar:00001"]
    assert _read_all(out) == ["00000"]
    # a whole archive loses nothing and counts nothing
    (root / "00000.tar").write_bytes(buf.getvalue())
    m = pipeline.build(pipeline.BuildConfig("webdataset", str(root), num_shards=1), str(out), workers=1,
                       progress=False, overwrite=True)
    assert m["skipped"] == {} and _read_all(out) == ["00000", "00001", "00002", "00003"]


def test_build_without_records_fails_and_keeps_the_previous_corpus(previous, tmp_path, capsys):
    _, out, before = previous
    empty = _jsonl_input(tmp_path / "notags", n=3, tags=False)
    assert cli.main(_build_args(empty, out, "--overwrite")) == 2
    line = _one_line(capsys.readouterr().err)
    assert "no records" in line and str(empty) in line and "no_hashtags" in line
    _assert_untouched(out, before)
    fresh = tmp_path / "fresh"
    assert cli.main(_build_args(empty, fresh)) == 2 and not fresh.exists()


def test_input_without_posts_fails(tmp_path, capsys):
    insta = tmp_path / "insta"
    (insta / "profile").mkdir(parents=True)
    (insta / "profile" / "id").write_text("123")
    (insta / "profile" / "natgeo_profile_pic.jpg").write_bytes(corpus_inputs.jpeg(1))
    out = tmp_path / "out"
    assert cli.main(["build", "--source", "instaloader", "--input", str(insta), "--output", str(out),
                     "--workers", "1", "--no-progress"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert str(insta) in line and "no posts found" in line
    assert not out.exists()


# --- the output folder is locked for the build ---------------------------------------------

def test_second_build_into_a_locked_output_stops_at_once(previous, capsys):
    inp, out, before = previous
    script = ("import sys, time\nfrom weaksup import workdir_lock\n"
              "workdir_lock.acquire(sys.argv[1], 'corpus build')\nprint('held', flush=True)\ntime.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", script, str(out)], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parent.parent)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert cli.main(_build_args(inp, out, "--overwrite")) == 2
        line = _one_line(capsys.readouterr().err)
        assert "in use by corpus build" in line and f"pid {holder.pid}" in line
    finally:
        holder.kill()
        holder.wait()
    # the refused build touched nothing (the killed holder's lock file stays behind)
    assert {k: v for k, v in _snapshot(out).items() if not k.startswith(".weaksup-lock")} == before
    assert Corpus(out).verify()["ok"] and not (out / pipeline.STAGING).exists()


# --- 11: letters normalisation cannot map stay as they are ---------------------------------

@pytest.mark.parametrize("letter,capital", [("ß", "ẞ"), ("æ", "Æ"), ("ø", "Ø"), ("ł", "Ł"), ("þ", "Þ"),
                                            ("đ", "Đ"), ("œ", "Œ"), ("ŋ", "Ŋ")])
def test_unmappable_letters_are_kept(letter, capital):
    assert hashtag_words(f"#{letter}") == [letter]
    assert hashtag_words(f"#{capital}") == [letter]
    assert hashtag_words(f"Hund{letter}") == [f"hund{letter}"]
    assert strip_accents(letter) == letter


def test_sharp_s_is_not_read_as_ss():
    from weaksup.hashtags.resolver import Resolver

    r = Resolver()
    assert hashtag_words("#ẞ") == ["ß"] and hashtag_words("#Straße") == ["straße"]
    assert r.resolve("#ß") is None and r.resolve("#ẞ") is None
    assert r.resolve("#ss").synset == "sulfur.n.01"  # written as ss, it is still the plural of s
    assert r.resolve("#café").synset == "cafe.n.01" and normalize_hashtag("Straße") == "strasse"
