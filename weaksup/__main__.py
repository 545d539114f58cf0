"""Command line: `python -m weaksup COMMAND ...`.

Each command lives in the module that owns the concept; it is imported only when run,
so `python -m weaksup resolve` does not pay for importing JAX.
"""

from __future__ import annotations

import importlib
import sys

# command -> (module, description). Each module exposes `main(argv: list[str]) -> int`.
COMMANDS: dict[str, tuple[str, str]] = {
    "wordnet": ("weaksup.wordnet", "install / inspect WordNet 3.0 and its compiled index"),
    "jpeg": ("weaksup.jpeg_region", "build / check the region JPEG decoder (libjpeg-turbo)"),
    "resolve": ("weaksup.hashtags.cli", "resolve hashtags to WordNet synsets (JSON lines)"),
    "corpus": ("weaksup.corpus.cli", "build or inspect an ArrayRecord hashtag corpus"),
    "vocab": ("weaksup.hashtags.vocab_cli", "build a label-space vocabulary from a corpus"),
    "models": ("weaksup.models.cli", "list models with parameter and multiply-add counts"),
    "train": ("weaksup.train", "pretrain from a config (jit-sharded, Orbax checkpoints)"),
    "evaluate": ("weaksup.evaluators.cli", "linear probe / ridge / fine-tune evaluation"),
    "predict": ("weaksup.predict", "top-k hashtag labels of your own pictures from a run"),
    "demo": ("weaksup.demo", "the EmojiGram experiment end to end"),
}


def _usage() -> str:
    lines = ["usage: python -m weaksup COMMAND [ARGS]", "", "commands:"]
    lines += [f"  {name:<10} {desc}" for name, (_, desc) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"weaksup: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
