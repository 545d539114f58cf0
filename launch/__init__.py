"""Launchers for `python -m weaksup train`: one machine, SLURM GPU clusters, TPU pods.

Each launcher only assembles the trainer's command line (and its distributed flags
`--coordinator ADDR --num-processes N --process-id I`) for its platform; `--dry-run`
prints exactly what would run and runs nothing. See launch/README.md.
"""
