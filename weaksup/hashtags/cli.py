"""`python -m weaksup resolve [--context] [--explain] [TAG ...]`: hashtags -> WordNet synsets, JSON lines.

Tags come from the arguments, or one per line from stdin when there are none. One JSON
object is written per input, in order:
    {"hashtag": "<input>", "synset": "dog.n.01" | null, "wnid": "n02084071" | null,
     "lemma": ..., "lexname": ..., "trace": [...]}
With --context all tags (arguments, or each stdin line's whitespace-separated tags) are
one post, and the senses of its tags are chosen jointly (#crane with #bird). --explain
adds "senses": each candidate sense with its score and the score's parts (prior, the
relatedness components to the post's other tags, their saturated sum "context", and
"score" = prior + context). Bad input (empty lines, '#', punctuation, emoji, huge or
undecodable tags) gives null, never a crash.
"""

from __future__ import annotations

import argparse
import json
import sys

from weaksup.hashtags.context import CandidateScore
from weaksup.hashtags.resolver import Resolution, Resolver


def _printable(tag: str) -> str:
    """The input as valid Unicode: undecodable bytes (lone surrogates) shown as U+FFFD."""
    if tag.isascii():
        return tag
    try:
        tag.encode("utf-8")
        return tag
    except UnicodeEncodeError:
        return tag.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _record(resolver: Resolver, tag: str, res: Resolution | None) -> dict:
    if res is None:
        try:
            why = list(resolver.explain(tag))
        except (ValueError, KeyError, UnicodeError):
            why = []
        return {"hashtag": _printable(tag), "synset": None, "wnid": None, "lemma": None,
                "lexname": None, "trace": why}
    return res.as_dict() | {"hashtag": tag}


def _write(obj: dict, out) -> None:
    out.write(json.dumps(obj, ensure_ascii=False) + "\n")


def main(argv: list[str]) -> int:
    """Entry point of `python -m weaksup resolve`."""
    ap = argparse.ArgumentParser(prog="python -m weaksup resolve", description=__doc__.split("\n")[0])
    ap.add_argument("--context", action="store_true",
                    help="treat the tags (or each stdin line) as one post; other tags pick senses")
    ap.add_argument("--explain", action="store_true",
                    help="add each candidate sense with the parts of its score")
    ap.add_argument("tags", nargs="*", help="hashtags, with or without '#'")
    args = ap.parse_args(argv)
    resolver = Resolver()
    out = sys.stdout
    if hasattr(out, "reconfigure"):
        out.reconfigure(errors="backslashreplace")
    if args.tags:
        posts = [args.tags] if args.context else [[t] for t in args.tags]
    else:
        stdin = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else None
        lines = (_decode(b) for b in stdin) if stdin else sys.stdin
        posts = _stdin_posts(lines, args.context)
    for tags in posts:
        if args.context and len(tags) > 1:
            results = resolver.resolve_post(tags)
        else:
            results = [_safe(resolver, t) for t in tags]
        explained = _explain(resolver, tags, args.context) if args.explain else None
        for k, (t, r) in enumerate(zip(tags, results)):
            rec = _record(resolver, t, r)
            if explained is not None:
                rec["senses"] = [_sense_record(resolver, c) for c in explained[k]]
            _write(rec, out)
        out.flush() if not args.tags else None
    return 0


def _explain(resolver: Resolver, tags: list[str], context: bool) -> list[list[CandidateScore]]:
    try:
        if context:
            return resolver.explain_post(tags)
        return [resolver.explain_post([t])[0] for t in tags]
    except (ValueError, KeyError, UnicodeError):  # defensive, as in _safe
        return [[] for _ in tags]


def _sense_record(resolver: Resolver, c: CandidateScore) -> dict:
    return {"synset": resolver.index.names[c.row], "prior": c.prior, **c.components,
            "context": c.context, "score": c.total}


def _decode(line: bytes) -> str:
    """A stdin line as text; bytes that are not UTF-8 become lone surrogates (like
    argv), which the resolver answers with null."""
    return line.decode("utf-8", errors="surrogateescape")


def _stdin_posts(lines, context: bool):
    for line in lines:
        line = line.rstrip("\r\n")
        if context:
            tags = line.split()
            yield tags if tags else [line]
        else:
            yield [line]


def _safe(resolver: Resolver, tag: str) -> Resolution | None:
    try:
        return resolver.resolve(tag)
    except (ValueError, KeyError, UnicodeError):  # defensive: a bad tag must not end the run
        return None
