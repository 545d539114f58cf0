"""WordNet 3.0: locate it, lay it out for NLTK, and compile a fast lookup index.

The hashtag resolver needs, for millions of lookups, a handful of facts WordNet holds:
which noun senses a lemma has and how often each was sense-tagged, each synset's
lexicographer file, its hypernym closure and depth, the noun morphology (suffix
rules plus `noun.exc`), and for choosing senses from a post's other hashtags each
synset's gloss and its part/member/substance and topic-domain links. NLTK's corpus reader takes ~15 s to walk every synset, so those
facts are compiled once from the raw database files into `cache_dir()/wordnet-index-*.npz`
(numpy arrays and a newline-joined UTF-8 string table; no pickle), which loads in well
under a second. NLTK's reader is only used to check the installed layout.

WordNet is found, in order, at: $WEAKSUP_WORDNET_DIR, `paths.nltk_data_dir()/corpora/wordnet`,
any `corpora/wordnet` on NLTK's data path, the Debian layout `/usr/share/wordnet`
(packages wordnet-base + wordnet-sense-index), and finally `nltk.download('wordnet')`.

Command line: `python -m weaksup wordnet install | info | synset NAME_OR_WNID ...`.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from weaksup import atomic, paths
from weaksup.errors import UsageError

ENV_VAR = "WEAKSUP_WORDNET_DIR"
DEBIAN_DIR = Path("/usr/share/wordnet")
LEXNAMES_MAN_PAGE = Path("/usr/share/man/man5/lexnames.5WN.gz")
# Bump when the compiled layout or its content changes; old caches are then rebuilt
# (the number is part of the cache file's name and is checked on load).
INDEX_FORMAT = 3
VERSION = "3.0"

# Files NLTK's WordNetCorpusReader opens (its _FILES), minus the ones we can generate.
DATABASE_FILES = (
    "index.noun", "index.verb", "index.adj", "index.adv",
    "data.noun", "data.verb", "data.adj", "data.adv",
    "noun.exc", "verb.exc", "adj.exc", "adv.exc",
    "index.sense", "cntlist.rev",
)
POS_NAMES = ("noun", "verb", "adj", "adv")

# Noun -> noun pointers kept besides hypernyms (data.noun pointer symbols), in the order
# of the codes stored in the index: meronyms, holonyms, and the domain pointers (topic,
# region, usage) with their members.
RELATION_KINDS = ("%p", "%m", "%s", "#p", "#m", "#s", ";c", ";r", ";u", "-c", "-r", "-u")
_RELATION_CODE = {k: i for i, k in enumerate(RELATION_KINDS)}

# WordNet's own noun detachment rules (morph.c / NLTK), applied once to a word form.
NOUN_SUFFIX_RULES = (
    ("s", ""), ("ses", "s"), ("ves", "f"), ("xes", "x"), ("zes", "z"),
    ("ches", "ch"), ("shes", "sh"), ("men", "man"), ("ies", "y"),
)

# The 45 lexicographer files (lexnames(5WN)); used when a layout lacks the `lexnames` file
# and the man page is not installed either.
_LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute "
    "noun.body noun.cognition noun.communication noun.event noun.feeling noun.food "
    "noun.group noun.location noun.motive noun.object noun.person noun.phenomenon "
    "noun.plant noun.possession noun.process noun.quantity noun.relation noun.shape "
    "noun.state noun.substance noun.time verb.body verb.change verb.cognition "
    "verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative "
    "verb.weather adj.ppl"
).split()
_LEXNAME_CATEGORY = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}

# ImageNet's wnid for dog.n.01; differs in every other WordNet version.
_VERSION_PROBE = ("dog", "n02084071")


class WordNetError(UsageError, RuntimeError):
    """WordNet is missing, incomplete, or not version 3.0."""


# --------------------------------------------------------------------------- locating


def _is_complete(d: Path) -> bool:
    return all((d / f).is_file() for f in DATABASE_FILES)


def candidate_dirs() -> list[Path]:
    """Directories that may hold a WordNet 3.0 database, in order of preference."""
    dirs: list[Path] = []
    if os.environ.get(ENV_VAR):
        dirs.append(Path(os.environ[ENV_VAR]).expanduser())
    dirs.append(paths.nltk_data_dir() / "corpora" / "wordnet")
    try:
        import nltk.data

        dirs += [Path(p) / "corpora" / "wordnet" for p in nltk.data.path]
    except ImportError:  # pragma: no cover - nltk is a dependency
        pass
    dirs.append(DEBIAN_DIR)
    return dirs


def locate() -> Path | None:
    """The first complete WordNet database directory, or None."""
    for d in candidate_dirs():
        if _is_complete(d):
            return d
    return None


def nltk_wordnet_dir() -> Path:
    """Where `install` lays WordNet out as an NLTK corpus."""
    return paths.nltk_data_dir() / "corpora" / "wordnet"


def _lexnames_text() -> str:
    """The `lexnames` file, generated from the lexnames(5WN) man page when present."""
    names: list[str] = []
    if LEXNAMES_MAN_PAGE.is_file():
        with gzip.open(LEXNAMES_MAN_PAGE, "rt", encoding="utf-8", errors="replace") as f:
            for line in f:
                m = re.match(r"^(\d\d)\t(\S+)\s*\t", line)
                if m:
                    names.append(m.group(2))
    if names != list(_LEXNAMES):
        if names:
            raise WordNetError(
                f"{LEXNAMES_MAN_PAGE}: expected the 45 WordNet 3.0 lexicographer files, "
                f"found {len(names)}"
            )
        names = list(_LEXNAMES)
    return "".join(
        f"{i:02d}\t{n}\t{_LEXNAME_CATEGORY[n.split('.')[0]]}\n" for i, n in enumerate(names)
    )


def _check_version(d: Path) -> None:
    lemma, wnid = _VERSION_PROBE
    line = _index_line(d / "index.noun", lemma)
    if line is None:
        raise WordNetError(f"{d / 'index.noun'}: no entry for {lemma!r}; not a WordNet database")
    first = line.split()[-int(line.split()[2])]
    if f"n{first}" != wnid:
        raise WordNetError(
            f"{d}: {lemma}.n.01 has offset {first}, WordNet 3.0 (ImageNet) has {wnid[1:]}; "
            "this is not WordNet 3.0"
        )


def _index_line(path: Path, lemma: str) -> str | None:
    prefix = lemma + " "
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith(prefix):
                return line
    return None


def _copy_if_changed(src: Path, dst: Path) -> bool:
    if dst.is_file() and dst.stat().st_size == src.stat().st_size and (
        dst.stat().st_mtime_ns == src.stat().st_mtime_ns
    ):
        return False
    with atomic.replacing(dst) as tmp:
        shutil.copy2(src, tmp)
    return True


def _try_nltk_download(target_root: Path, timeout_s: float = 20.0) -> Path | None:
    """nltk.download('wordnet') into target_root; None when it fails (e.g. offline)."""
    import socket

    import nltk

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)
    try:
        ok = nltk.download("wordnet", download_dir=str(target_root), quiet=True,
                           raise_on_error=True)
    except Exception:  # any network or archive failure means "not available"
        ok = False
    finally:
        socket.setdefaulttimeout(old)
    d = target_root / "corpora" / "wordnet"
    if not ok:
        return None
    if not _is_complete(d) and (target_root / "corpora" / "wordnet.zip").is_file():
        import zipfile

        with zipfile.ZipFile(target_root / "corpora" / "wordnet.zip") as z:
            z.extractall(target_root / "corpora")
    return d if _is_complete(d) else None


def install(verbose: bool = True) -> Path:
    """Lay WordNet 3.0 out under `nltk_wordnet_dir()` and build the compiled index.

    Idempotent: files already in place are left alone, and the index is rebuilt only when
    missing or out of date. Returns the NLTK corpus directory.
    """
    log = print if verbose else (lambda *a, **k: None)
    target = nltk_wordnet_dir()
    src = next((d for d in candidate_dirs() if _is_complete(d) and d != target), None)
    if src is None and not _is_complete(target):
        log("wordnet: no local WordNet 3.0 found; trying nltk.download('wordnet') ...")
        src = _try_nltk_download(paths.nltk_data_dir())
        if src is None:
            raise WordNetError(
                "WordNet 3.0 not found. Install the Debian packages "
                "(sudo apt-get install wordnet-base wordnet-sense-index), or run "
                "python -c \"import nltk; nltk.download('wordnet')\" where the network "
                f"allows, or point {ENV_VAR} at a WordNet 3.0 dict directory. Looked in: "
                + ", ".join(str(d) for d in candidate_dirs())
            )
    if src is not None and src.resolve() != target.resolve():
        _check_version(src)
        target.mkdir(parents=True, exist_ok=True)
        changed = [f for f in DATABASE_FILES if _copy_if_changed(src / f, target / f)]
        if changed:
            log(f"wordnet: copied {len(changed)} files from {src} to {target}")
    _check_version(target)
    lexnames = target / "lexnames"
    text = _lexnames_text() if not (src and (src / "lexnames").is_file()) else (
        (src / "lexnames").read_text(encoding="utf-8"))
    if not lexnames.is_file() or lexnames.read_text(encoding="utf-8") != text:
        atomic.write_bytes(lexnames, text.encode("utf-8"))
        log(f"wordnet: wrote {lexnames}")
    stamp = target / ".weaksup-verified"
    if not stamp.is_file():
        _verify_with_nltk(target)
        atomic.write_bytes(stamp, b"nltk reader ok\n")
        log(f"wordnet: NLTK reads {target} (dog.n.01 = {_VERSION_PROBE[1]})")
    path = index_path()
    if path.is_file() and _cache_matches(path, target):
        log(f"wordnet: compiled index up to date at {path}")
    else:
        t0 = time.perf_counter()
        build_index(target, path)
        log(f"wordnet: built compiled index {path} in {time.perf_counter() - t0:.1f} s")
    load_index.cache_clear()
    return target


def register_nltk_path() -> None:
    """Put the project's NLTK data dir on NLTK's search path.

    After this, `nltk.corpus.wordnet` reads the WordNet 3.0 that `install` laid out
    (NLTK also refuses to open corpus files outside its data path).
    """
    import nltk.data

    root = str(paths.nltk_data_dir())
    if root not in nltk.data.path:
        nltk.data.path.insert(0, root)


def _verify_with_nltk(d: Path) -> None:
    import warnings

    import nltk.data
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    register_nltk_path()
    if str(d.parent.parent) not in nltk.data.path:
        nltk.data.path.append(str(d.parent.parent))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available"
        reader = WordNetCorpusReader(str(d), None)
    dog = reader.synset("dog.n.01")
    if f"n{dog.offset():08d}" != _VERSION_PROBE[1]:
        raise WordNetError(f"{d}: NLTK reads dog.n.01 as n{dog.offset():08d}; not WordNet 3.0")


# --------------------------------------------------------------------------- compiling


def index_path() -> Path:
    """The compiled index file in the project cache."""
    return paths.cache_dir() / f"wordnet-{VERSION}-index-v{INDEX_FORMAT}.npz"


def _source_signature(d: Path) -> str:
    h = hashlib.sha256(f"format={INDEX_FORMAT}".encode())
    for f in DATABASE_FILES:
        st = (d / f).stat()
        h.update(f"{f}:{st.st_size}".encode())
    return h.hexdigest()[:16]


def _cache_matches(path: Path, d: Path) -> bool:
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode("utf-8"))
        return meta.get("format") == INDEX_FORMAT and meta.get("source") == _source_signature(d)
    except Exception:  # unreadable or foreign file: rebuild it
        return False


def _read_lines(path: Path) -> Iterable[str]:
    with open(path, encoding="utf-8", errors="strict") as f:
        for line in f:
            if not line.startswith("  "):  # license header lines start with two spaces
                yield line


def _parse_sense_counts(d: Path) -> tuple[dict[tuple[str, int], int], dict[str, dict[str, int]]]:
    """(lemma, noun offset) -> tag count, and pos -> lemma -> summed tag count."""
    noun_counts: dict[tuple[str, int], int] = {}
    pos_totals: dict[str, dict[str, int]] = {p: {} for p in POS_NAMES}
    ss_pos = {"1": "noun", "2": "verb", "3": "adj", "4": "adv", "5": "adj"}
    path = d / "index.sense"
    for n, line in enumerate(_read_lines(path), 1):
        parts = line.split()
        if len(parts) != 4 or "%" not in parts[0]:
            raise WordNetError(f"{path}:{n}: malformed sense line {line[:80]!r}")
        lemma, rest = parts[0].split("%", 1)
        pos = ss_pos[rest[0]]
        count = int(parts[3])
        if pos == "noun":
            noun_counts[(lemma, int(parts[1]))] = count
        totals = pos_totals[pos]
        totals[lemma] = totals.get(lemma, 0) + count
    return noun_counts, pos_totals


def build_index(wordnet_dir: Path, out_path: Path) -> None:
    """Compile the noun lookup index from a WordNet 3.0 database directory."""
    d = Path(wordnet_dir)
    _check_version(d)
    lexnames = list(_LEXNAMES)

    # Synsets from data.noun, in file (offset) order.
    offsets: list[int] = []
    lex_ids: list[int] = []
    syn_words: list[list[str]] = []
    hyper_offsets: list[list[int]] = []
    rel_offsets: list[list[tuple[int, int]]] = []
    glosses: list[str] = []
    path = d / "data.noun"
    for n, line in enumerate(_read_lines(path), 1):
        head_text, _, gloss = line.partition(" | ")
        head = head_text.split()
        try:
            offset, lex, n_words = int(head[0]), int(head[1]), int(head[3], 16)
            words = [head[4 + 2 * i] for i in range(n_words)]
            i = 4 + 2 * n_words
            n_ptrs = int(head[i])
            hyps = [
                int(head[i + 2 + 4 * k]) for k in range(n_ptrs)
                if head[i + 1 + 4 * k] in ("@", "@i") and head[i + 3 + 4 * k] == "n"
            ]
            rels = [
                (_RELATION_CODE[head[i + 1 + 4 * k]], int(head[i + 2 + 4 * k]))
                for k in range(n_ptrs)
                if head[i + 1 + 4 * k] in _RELATION_CODE and head[i + 3 + 4 * k] == "n"
            ]
        except (IndexError, ValueError) as e:
            raise WordNetError(f"{path}:{n}: malformed synset line ({e})") from None
        offsets.append(offset)
        lex_ids.append(lex)
        syn_words.append(words)
        hyper_offsets.append(hyps)
        rel_offsets.append(rels)
        glosses.append(gloss.strip())
    row_of = {o: i for i, o in enumerate(offsets)}
    n_syn = len(offsets)

    # Lemma -> senses (offsets in WordNet's frequency order) from index.noun.
    noun_counts, pos_totals = _parse_sense_counts(d)
    lemmas: list[str] = []
    sense_rows: list[list[int]] = []
    path = d / "index.noun"
    for n, line in enumerate(_read_lines(path), 1):
        parts = line.split()
        try:
            n_syn_l = int(parts[2])
            rows = [row_of[int(o)] for o in parts[-n_syn_l:]]
        except (IndexError, ValueError, KeyError) as e:
            raise WordNetError(f"{path}:{n}: malformed index line ({e})") from None
        lemmas.append(parts[0])
        sense_rows.append(rows)
    lemma_row = {l: i for i, l in enumerate(lemmas)}

    # Canonical names (NLTK's rule: first lemma, its sense number for that lemma).
    names: list[str] = []
    for i, words in enumerate(syn_words):
        first = words[0].lower()
        senses = sense_rows[lemma_row[first]]
        names.append(f"{first}.n.{senses.index(i) + 1:02d}")

    # Hypernym closure (hypernyms + instance hypernyms) in breadth-first order, nearest
    # first, and the minimum depth (shortest path to a root).
    parents = [[row_of[o] for o in hs] for hs in hyper_offsets]
    closure: list[list[int]] = []
    for i in range(n_syn):
        seen = dict.fromkeys(parents[i])
        frontier = list(seen)
        while frontier:
            nxt = []
            for p in frontier:
                for q in parents[p]:
                    if q not in seen:
                        seen[q] = None
                        nxt.append(q)
            frontier = nxt
        closure.append(list(seen))
    depth = np.full(n_syn, -1, np.int32)

    def min_depth(i: int) -> int:
        if depth[i] < 0:
            depth[i] = 0 if not parents[i] else 1 + min(min_depth(p) for p in parents[i])
        return int(depth[i])

    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))
    for i in range(n_syn):
        min_depth(i)

    # Per-synset tag count: the sum over its lemmas (index.sense keys are lowercase).
    syn_count = np.zeros(n_syn, np.int32)
    sense_count_rows: list[list[int]] = []
    for lemma, rows in zip(lemmas, sense_rows):
        cs = [noun_counts.get((lemma, offsets[r]), 0) for r in rows]
        sense_count_rows.append(cs)
        for r, c in zip(rows, cs):
            syn_count[r] += c

    # Other parts of speech: lemma -> summed tag count (0 when listed but never tagged).
    other: dict[str, list[str]] = {}
    other_counts: dict[str, np.ndarray] = {}
    for pos in ("verb", "adj", "adv"):
        ls: list[str] = []
        for line in _read_lines(d / f"index.{pos}"):
            ls.append(line.split(" ", 1)[0])
        other[pos] = ls
        other_counts[pos] = np.array([pos_totals[pos].get(l, 0) for l in ls], np.int32)

    exc: list[str] = []
    for line in _read_lines(d / "noun.exc"):
        parts = line.split()
        if len(parts) >= 2:
            exc.append(parts[0] + "\t" + " ".join(parts[1:]))

    def csr(rows: Sequence[Sequence[int]], dtype=np.int32) -> tuple[np.ndarray, np.ndarray]:
        ptr = np.zeros(len(rows) + 1, np.int64)
        ptr[1:] = np.cumsum([len(r) for r in rows])
        flat = np.fromiter((x for r in rows for x in r), dtype, count=int(ptr[-1]))
        return ptr, flat

    def strings(xs: Sequence[str]) -> np.ndarray:
        for x in xs:
            if "\n" in x:
                raise WordNetError(f"string with a newline in the WordNet data: {x!r}")
        return np.frombuffer("\n".join(xs).encode("utf-8"), np.uint8)

    flat_words = [w for ws in syn_words for w in ws]
    word_ptr = np.zeros(n_syn + 1, np.int64)
    word_ptr[1:] = np.cumsum([len(ws) for ws in syn_words])
    sense_ptr, sense_flat = csr(sense_rows)
    _, sense_cnt_flat = csr(sense_count_rows)
    hyp_ptr, hyp_flat = csr(parents)
    rel_ptr, rel_flat = csr([[row_of[o] for _, o in rs] for rs in rel_offsets])
    _, rel_kind_flat = csr([[k for k, _ in rs] for rs in rel_offsets], np.int8)
    clo_ptr, clo_flat = csr(closure)
    meta = {
        "format": INDEX_FORMAT,
        "version": VERSION,
        "source": _source_signature(d),
        "source_dir": str(d),
        "lexnames": lexnames,
        "counts": {"synsets": n_syn, "lemmas": len(lemmas), "closure_links": int(clo_ptr[-1])},
    }
    arrays = dict(
        meta=np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8),
        offsets=np.array(offsets, np.int32),
        lexname=np.array(lex_ids, np.int8),
        depth=depth,
        syn_count=syn_count,
        names=strings(names),
        words=strings(flat_words),
        word_ptr=word_ptr,
        lemmas=strings(lemmas),
        sense_ptr=sense_ptr,
        sense_rows=sense_flat,
        sense_counts=sense_cnt_flat,
        hyp_ptr=hyp_ptr,
        hyp_rows=hyp_flat,
        closure_ptr=clo_ptr,
        closure_rows=clo_flat,
        rel_ptr=rel_ptr,
        rel_rows=rel_flat,
        rel_kinds=rel_kind_flat,
        glosses=strings(glosses),
        noun_exc=strings(exc),
        **{f"{p}_lemmas": strings(other[p]) for p in other},
        **{f"{p}_counts": other_counts[p] for p in other},
    )
    with atomic.replacing(out_path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


# --------------------------------------------------------------------------- the index


@dataclass(frozen=True)
class SynsetInfo:
    """One noun synset as the compiled index knows it."""

    name: str  # "dog.n.01"
    wnid: str  # "n02084071" (ImageNet's id: 'n' + 8-digit WordNet 3.0 offset)
    offset: int
    lemmas: tuple[str, ...]  # as written in WordNet ("dog", "domestic_dog", "Canis_familiaris")
    lexname: str  # "noun.animal"
    hypernyms: tuple[str, ...]  # the full closure incl. instance hypernyms, nearest first
    depth: int  # shortest hypernym path to a root (entity.n.01 has depth 0)
    count: int  # sense-tagged occurrences summed over its lemmas
    gloss: str = ""  # definition; examples


def _split(arr: np.ndarray) -> list[str]:
    b = arr.tobytes()
    return b.decode("utf-8").split("\n") if b else []


class WordNetIndex:
    """Compiled WordNet 3.0 noun index. Synsets are addressed by row (int) internally.

    Build it with `load_index()` (cached per process), not directly.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            with np.load(self.path, allow_pickle=False) as z:
                a = {k: z[k] for k in z.files}
        except Exception as e:
            raise WordNetError(f"{self.path}: unreadable compiled WordNet index ({e})") from e
        self.meta: dict = json.loads(a["meta"].tobytes().decode("utf-8"))
        if self.meta.get("format") != INDEX_FORMAT:
            raise WordNetError(f"{self.path}: index format {self.meta.get('format')}, "
                               f"expected {INDEX_FORMAT}; rebuild with `weaksup wordnet install`")
        self.lexnames: list[str] = self.meta["lexnames"]
        self.offsets: np.ndarray = a["offsets"]
        self.lexname_ids: np.ndarray = a["lexname"]
        self.depths: np.ndarray = a["depth"]
        self.synset_counts: np.ndarray = a["syn_count"]
        # Tuples of atoms, not lists: the garbage collector stops scanning them, which
        # keeps collections cheap in processes that resolve millions of hashtags.
        self.names: tuple[str, ...] = tuple(_split(a["names"]))
        self._words = tuple(_split(a["words"]))
        self._word_ptr = tuple(a["word_ptr"].tolist())
        lemmas = _split(a["lemmas"])
        sp = a["sense_ptr"].tolist()
        rows = a["sense_rows"].tolist()
        cnts = a["sense_counts"].tolist()
        # lemma -> ((row, count), ...) in WordNet's sense order.
        self._senses: dict[str, tuple[tuple[int, int], ...]] = {
            l: tuple(zip(rows[sp[i]:sp[i + 1]], cnts[sp[i]:sp[i + 1]]))
            for i, l in enumerate(lemmas)
        }
        self._clo_ptr = tuple(a["closure_ptr"].tolist())
        self._clo_rows = a["closure_rows"]
        self._hyp_ptr = tuple(a["hyp_ptr"].tolist())
        self._hyp_rows = a["hyp_rows"]
        # The inverse (hyponyms and instances per synset), built on first use.
        self._hypo: tuple[tuple[int, ...], np.ndarray] | None = None
        self._rel_ptr = tuple(a["rel_ptr"].tolist())
        self._rel_rows = a["rel_rows"]
        self._rel_kinds = a["rel_kinds"]
        # Decoded on first use: only sense choice from context reads glosses.
        self._gloss_bytes = a["glosses"]
        self._glosses: tuple[str, ...] | None = None
        self._closure_sets: dict[int, frozenset[int]] = {}
        self._row_of_name = {n: i for i, n in enumerate(self.names)}
        self._row_of_offset = {o: i for i, o in enumerate(self.offsets.tolist())}
        self.noun_exceptions: dict[str, tuple[str, ...]] = {}
        for line in _split(a["noun_exc"]):
            form, bases = line.split("\t")
            self.noun_exceptions[form] = tuple(bases.split())
        self._other: dict[str, dict[str, int]] = {
            p: dict(zip(_split(a[f"{p}_lemmas"]), a[f"{p}_counts"].tolist()))
            for p in ("verb", "adj", "adv")
        }

    # -- sizes and identity
    def __len__(self) -> int:
        return len(self.names)

    @property
    def num_lemmas(self) -> int:
        return len(self._senses)

    @property
    def version(self) -> str:
        return self.meta["version"]

    def fingerprint(self) -> str:
        """Stable id of the compiled content (WordNet version + source + format)."""
        return f"wn{self.version}-{self.meta['source']}"

    # -- synsets
    def row(self, key: str) -> int:
        """Row of a synset given its name ("dog.n.01") or wnid ("n02084071"); KeyError if unknown."""
        if key in self._row_of_name:
            return self._row_of_name[key]
        if len(key) == 9 and key[0] == "n" and key[1:].isdigit():
            return self._row_of_offset[int(key[1:])]
        raise KeyError(f"unknown WordNet 3.0 noun synset {key!r}")

    def __contains__(self, key: str) -> bool:
        try:
            self.row(key)
            return True
        except KeyError:
            return False

    def wnid(self, row: int) -> str:
        return f"n{int(self.offsets[row]):08d}"

    def lexname(self, row: int) -> str:
        return self.lexnames[int(self.lexname_ids[row])]

    def synset_lemmas(self, row: int) -> tuple[str, ...]:
        return tuple(self._words[self._word_ptr[row]:self._word_ptr[row + 1]])

    def closure_rows(self, row: int) -> frozenset[int]:
        """Every ancestor (hypernyms and instance hypernyms, transitively), cached."""
        got = self._closure_sets.get(row)
        if got is None:
            got = frozenset(self._clo_rows[self._clo_ptr[row]:self._clo_ptr[row + 1]].tolist())
            self._closure_sets[row] = got
        return got

    def descendant_counts(self) -> np.ndarray:
        """Per synset, how many synsets lie below it (hyponyms and instances, transitively)."""
        return np.bincount(self._clo_rows, minlength=len(self.names))

    def hypernym_rows(self, row: int) -> tuple[int, ...]:
        """Direct hypernyms and instance hypernyms of a synset."""
        return tuple(self._hyp_rows[self._hyp_ptr[row]:self._hyp_ptr[row + 1]].tolist())

    def hyponym_rows(self, row: int) -> tuple[int, ...]:
        """Direct hyponyms and instances of a synset, in row order."""
        if self._hypo is None:
            n = len(self.names)
            parents = np.asarray(self._hyp_rows)
            children = np.repeat(np.arange(n), np.diff(np.asarray(self._hyp_ptr)))
            order = np.lexsort((children, parents))
            ptr = np.zeros(n + 1, np.int64)
            np.cumsum(np.bincount(parents, minlength=n), out=ptr[1:])
            self._hypo = (tuple(ptr.tolist()), children[order])
        ptr, rows = self._hypo
        return tuple(rows[ptr[row]:ptr[row + 1]].tolist())

    def related_rows(self, row: int, kinds: str | Sequence[str] = RELATION_KINDS
                     ) -> tuple[int, ...]:
        """Synsets linked to `row` by the given pointer kinds (`RELATION_KINDS`:
        "%p" part meronym, "#p" part holonym, ";c" topic domain, ...), in file order."""
        lo, hi = self._rel_ptr[row], self._rel_ptr[row + 1]
        if lo == hi:
            return ()
        want = {_RELATION_CODE[k] for k in ([kinds] if isinstance(kinds, str) else kinds)}
        return tuple(r for r, k in zip(self._rel_rows[lo:hi].tolist(),
                                       self._rel_kinds[lo:hi].tolist()) if k in want)

    def gloss(self, row: int) -> str:
        """The synset's definition and examples as WordNet writes them."""
        if self._glosses is None:
            self._glosses = tuple(_split(self._gloss_bytes))
        return self._glosses[row]

    def synset(self, key: str | int) -> SynsetInfo:
        """Everything the index knows about one synset (by name, wnid or row)."""
        r = key if isinstance(key, (int, np.integer)) else self.row(key)
        r = int(r)
        clo = self._clo_rows[self._clo_ptr[r]:self._clo_ptr[r + 1]].tolist()
        return SynsetInfo(
            name=self.names[r], wnid=self.wnid(r), offset=int(self.offsets[r]),
            lemmas=self.synset_lemmas(r), lexname=self.lexname(r),
            hypernyms=tuple(self.names[q] for q in clo), depth=int(self.depths[r]),
            count=int(self.synset_counts[r]), gloss=self.gloss(r),
        )

    def is_hyponym(self, x: str | int, y: str | int) -> bool:
        """True when synset x is y or lies below y (via hypernyms or instance hypernyms)."""
        rx = x if isinstance(x, int) else self.row(x)
        ry = y if isinstance(y, int) else self.row(y)
        return rx == ry or ry in self.closure_rows(rx)

    # -- lemmas
    def noun_senses(self, lemma: str) -> tuple[tuple[int, int], ...]:
        """(row, tag count) for each noun sense of a lemma, in WordNet's order; () if none.

        Lemmas are lowercase with underscores ("golden_retriever").
        """
        return self._senses.get(lemma, ())

    def is_noun(self, lemma: str) -> bool:
        return lemma in self._senses

    def noun_lemmas(self) -> Iterable[str]:
        return self._senses.keys()

    def pos_table(self, pos: str) -> Mapping[str, int]:
        """lemma -> summed tag count for "verb", "adj" or "adv". Shared: do not modify."""
        return self._other[pos]

    def lemmas_of(self, pos: str) -> Iterable[str]:
        """All lemmas of a part of speech ("noun", "verb", "adj", "adv")."""
        return self._senses.keys() if pos == "noun" else self._other[pos].keys()

    def pos_count(self, lemma: str, pos: str) -> int | None:
        """Summed tag count of a lemma in a part of speech; None if it has no such entry."""
        if pos == "noun":
            s = self._senses.get(lemma)
            return None if s is None else sum(c for _, c in s)
        return self._other[pos].get(lemma)

    def lemmatize_noun(self, form: str) -> list[str]:
        """Noun lemmas a word form may be an inflection of (WordNet morphy), form itself first.

        `noun.exc` lists irregular plurals (geese -> goose); otherwise each suffix rule is
        applied once ("puppies" -> "puppy").
        """
        senses = self._senses
        out: list[str] = [form] if form in senses else []
        exc = self.noun_exceptions.get(form)
        if exc is not None:
            cands = exc
        elif form.endswith("s") or form.endswith("men"):  # every rule's suffix ends so
            cands = [form[: -len(old)] + new for old, new in NOUN_SUFFIX_RULES
                     if form.endswith(old)]
        else:
            return out
        for c in cands:
            if c in senses and c not in out:
                out.append(c)
        return out

    def stats(self) -> dict:
        return {
            "version": self.version,
            "synsets": len(self),
            "noun_lemmas": self.num_lemmas,
            "closure_links": int(self._clo_ptr[-1]),
            "max_depth": int(self.depths.max()),
            "noun_exceptions": len(self.noun_exceptions),
            **{f"{p}_lemmas": len(v) for p, v in self._other.items()},
        }


@functools.lru_cache(maxsize=None)
def load_index() -> WordNetIndex:
    """The compiled index, built from the located WordNet 3.0 on first use (then cached)."""
    path = index_path()
    if path.is_file():
        try:
            return WordNetIndex(path)
        except WordNetError:  # unreadable or stale: rebuild it below
            pass
    src = locate()
    if src is None:
        raise WordNetError(
            f"no compiled WordNet index at {path} and no WordNet 3.0 found; "
            "run `make setup` (or `python -m weaksup wordnet install`)"
        )
    build_index(src, path)
    return WordNetIndex(path)


# --------------------------------------------------------------------------- CLI


def main(argv: list[str]) -> int:
    """`python -m weaksup wordnet install | info | synset KEY...`."""
    ap = argparse.ArgumentParser(prog="python -m weaksup wordnet", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("install", help="lay WordNet 3.0 out for NLTK and build the compiled index")
    sub.add_parser("info", help="where WordNet and the index are, and index statistics")
    sp = sub.add_parser("synset", help="print what the index knows about synsets (JSON lines)")
    sp.add_argument("keys", nargs="+", help="synset names (dog.n.01), wnids (n02084071) or lemmas")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "install":
            install(verbose=True)
            return 0
        if args.cmd == "info":
            print(f"data dir:        {paths.data_dir()}")
            print(f"nltk corpus dir: {nltk_wordnet_dir()} "
                  f"({'complete' if _is_complete(nltk_wordnet_dir()) else 'missing'})")
            print(f"located source:  {locate()}")
            path = index_path()
            print(f"compiled index:  {path} ({'present' if path.is_file() else 'missing'})")
            if path.is_file():
                t0 = time.perf_counter()
                idx = WordNetIndex(path)
                dt = time.perf_counter() - t0
                print(f"index load:      {dt:.3f} s, {path.stat().st_size / 2**20:.1f} MiB")
                for k, v in idx.stats().items():
                    print(f"  {k}: {v}")
            return 0
        idx = load_index()
        for key in args.keys:
            if key in idx:
                rows = [idx.row(key)]
            else:
                rows = [r for r, _ in idx.noun_senses(key.lower().replace(" ", "_"))]
            if not rows:
                print(json.dumps({"key": key, "synset": None}))
            for r in rows:
                info = idx.synset(r)
                print(json.dumps({"key": key, **info.__dict__}))
        return 0
    except WordNetError as e:
        print(f"wordnet: {e}", file=sys.stderr)
        return 1
