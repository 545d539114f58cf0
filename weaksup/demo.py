"""The EmojiGram experiment end to end (`make demo`). Not built yet."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    print(
        "weaksup demo: not implemented yet -- the end-to-end EmojiGram experiment lands "
        "with the end-to-end issue. Nothing was run.",
        file=sys.stderr,
    )
    return 1
