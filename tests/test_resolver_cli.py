"""`python -m weaksup resolve`: the exact JSON-lines contract, from arguments and stdin."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(args: list[str], stdin: bytes | None = None) -> list[dict]:
    proc = subprocess.run([sys.executable, "-m", "weaksup", "resolve", *args], input=stdin,
                          capture_output=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    return [json.loads(l) for l in proc.stdout.decode("utf-8").splitlines()]


def test_arguments_in_order() -> None:
    out = run(["#dog", "DogsOfInstagram", "instagood", "tiger"])
    assert [o["hashtag"] for o in out] == ["#dog", "DogsOfInstagram", "instagood", "tiger"]
    assert [o["synset"] for o in out] == ["dog.n.01", "dog.n.01", None, "tiger.n.02"]
    assert out[0]["wnid"] == "n02084071" and out[2]["wnid"] is None


def test_stdin_with_bad_input() -> None:
    lines = [b"dog", b"", b"#", b"##", b"!!!", "🐶".encode(), b"x" * 10_000, b"\xff\xfedog",
             b"geese", b"#Hot-Dog\r"]
    out = run([], stdin=b"\n".join(lines) + b"\n")
    assert len(out) == len(lines)
    assert [o["synset"] for o in out] == [
        "dog.n.01", None, None, None, None, None, None, None, "goose.n.01", "hotdog.n.02"]
    assert out[0]["hashtag"] == "dog" and out[1]["hashtag"] == ""
    assert out[7]["trace"] == ["invalid-unicode"] and "\ufffd" in out[7]["hashtag"]
    for o in out:
        assert {"hashtag", "synset", "wnid"} <= set(o)


def test_context_flag() -> None:
    out = run(["--context", "crane", "bird"])
    assert [o["synset"] for o in out] == ["crane.n.05", "bird.n.01"]
    out = run(["--context"], stdin=b"crane bird\ncrane building truck\n")
    assert [o["synset"] for o in out] == [
        "crane.n.05", "bird.n.01", "crane.n.04", "building.n.01", "truck.n.01"]
