"""`python -m weaksup weights import|export`: PyTorch state dicts in and out of weaksup runs.

    python -m weaksup weights import --model NAME --from FILE --workdir RUN [--vocab FILE]
                                     [--image-size N] [--names torchvision|timm|swag]
    python -m weaksup weights export --workdir RUN --output DIR [--step N] [--names torchvision|timm]

`import` reads a `.pth`/`.pt`/`.torch`/`.bin` (needs torch) or `.safetensors` state dict under torchvision,
timm or SWAG names (detected unless given) and writes RUN as a weaksup run that `evaluate`
(`pretrained.workdir`) and `predict --workdir` accept. `export` writes DIR/model.safetensors
(torchvision or timm names), DIR/vocab.json, DIR/model_card.json and DIR/MODEL_CARD.md.
Exit status: 0 done, 2 a bad file, run folder or option (one line naming the file or key).
"""

from __future__ import annotations

import argparse
import logging
import sys

from weaksup import console
from weaksup.errors import EXIT_OK, EXIT_USAGE, UsageError
from weaksup.weights import names, transfer

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m weaksup weights", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    imp = sub.add_parser("import", help="a PyTorch state dict -> a weaksup run folder")
    imp.add_argument("--model", required=True, help="weaksup model name (python -m weaksup models)")
    imp.add_argument("--from", dest="source", required=True,
                     help="a state dict: .pth, .pt, .torch, .bin (needs torch) or .safetensors")
    imp.add_argument("--workdir", required=True, help="the run folder to write (must hold no checkpoint)")
    imp.add_argument("--vocab", default=None,
                     help="vocabulary JSON of the head's classes (default: ImageNet-1k for a 1000-class head)")
    imp.add_argument("--image-size", type=int, default=None,
                     help="run resolution (default: the model's; a ViT's is read from its position embedding, "
                          "which is resampled bicubically when this differs)")
    imp.add_argument("--names", choices=names.SCHEMES, default=None, help="naming scheme (default: detected)")
    exp = sub.add_parser("export", help="a weaksup run -> model.safetensors + vocabulary + model card")
    exp.add_argument("--workdir", required=True, help="the run folder (its checkpoints/)")
    exp.add_argument("--output", required=True, help="folder to write the files into")
    exp.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    exp.add_argument("--names", choices=names.EXPORT_SCHEMES, default="torchvision")
    return parser


def main(argv: list[str]) -> int:
    """Command-line entry point (see the module docstring)."""
    console.ensure_setup()  # status lines are log records: shown unless -q
    args = _parser().parse_args(argv)
    try:
        if args.action == "import":
            if args.image_size is not None and args.image_size < 1:
                raise UsageError(f"--image-size must be positive, got {args.image_size}")
            r = transfer.import_weights(args.model, args.source, args.workdir, vocab_path=args.vocab,
                                        image_size=args.image_size, scheme=args.names)
            log.info(f"weights: imported {r.tensors} tensors ({r.parameters:,} parameters, {r.scheme} names) "
                     f"from {r.source} as {r.model} at {r.image_size} px into {r.workdir}")
            log.info(f"weights: head {r.head}, {r.num_classes} classes ({r.vocabulary})")
            if r.unused:
                log.warning(f"weights: {len(r.unused)} key(s) of the file unused: {', '.join(r.unused)}")
        else:
            r = transfer.export_weights(args.workdir, args.output, step=args.step, scheme=args.names)
            log.info(f"weights: exported {r.model} step {r.step} ({r.tensors} tensors, {r.parameters:,} parameters, "
                     f"{r.num_classes} classes, {r.scheme} names) to {r.output}: {', '.join(r.files)}")
    except UsageError as e:
        print(f"weights: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK
