"""Command line: `python -m weaksup COMMAND ...`.

Each command lives in the module that owns the concept; it is imported only when run,
so `python -m weaksup resolve` does not pay for importing JAX.
"""

from __future__ import annotations

import importlib
import sys

from weaksup import console, host_memory

# command -> (module, description). Each module exposes `main(argv: list[str]) -> int`.
COMMANDS: dict[str, tuple[str, str]] = {
    "wordnet": ("weaksup.wordnet", "install / inspect WordNet 3.0 and its compiled index"),
    "jpeg": ("weaksup.jpeg_region", "build / check the region JPEG decoder (libjpeg-turbo)"),
    "onednn": ("weaksup.models.onednn", "build / check the oneDNN CPU training path (convolutions, batch norm)"),
    "resolve": ("weaksup.hashtags.cli", "resolve hashtags to WordNet synsets (JSON lines)"),
    "corpus": ("weaksup.corpus.cli", "build or inspect an ArrayRecord hashtag corpus"),
    "vocab": ("weaksup.hashtags.vocab_cli", "build a label-space vocabulary from a corpus"),
    "models": ("weaksup.models.cli", "list models with parameter and multiply-add counts"),
    "train": ("weaksup.train", "pretrain from a config (jit-sharded, Orbax checkpoints)"),
    "evaluate": ("weaksup.evaluators.cli", "linear probe / ridge / fine-tune evaluation"),
    "predict": ("weaksup.predict", "top-k hashtag labels of your own pictures from a run"),
    "weights": ("weaksup.weights.cli", "import / export weights as PyTorch state dicts (.pth, .safetensors)"),
    "runs": ("weaksup.runs", "list runs (status, step, metrics) or compare their results"),
    "plot": ("weaksup.plot", "training-curve and transfer PNGs of a run"),
    "demo": ("weaksup.demo", "the EmojiGram experiment end to end"),
}


# Commands that run JAX programs step after step: glibc keeps their freed memory for the
# next step (weaksup.host_memory), set before JAX starts its threads.
JAX_COMMANDS = ("train", "evaluate", "predict", "demo")

VERBOSITY_FLAGS = {"-q": -1, "--quiet": -1, "-v": 1, "--verbose": 1}


def _usage() -> str:
    lines = ["usage: weaksup [-v | -q] COMMAND [ARGS]   (or python -m weaksup ...)", "",
             "  -v, --verbose   debug messages and the libraries' own logs",
             "  -q, --quiet     warnings and errors only, no progress bars", "", "commands:"]
    lines += [f"  {name:<10} {desc}" for name, (_, desc) in COMMANDS.items()]
    lines += ["", "`weaksup COMMAND --help` describes a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # -v/-q are the package's own: accepted before or after the command (no command reuses them).
    verbosity = sum(VERBOSITY_FLAGS[a] for a in argv if a in VERBOSITY_FLAGS)
    argv = [a for a in argv if a not in VERBOSITY_FLAGS]
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"weaksup: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    console.setup(max(-1, min(1, verbosity)))
    if name in JAX_COMMANDS:
        host_memory.retain_freed_memory()
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
