"""Weights in and out: PyTorch state dicts (torchvision, timm, SWAG names) <-> weaksup runs.

  names     the name and layout map between weaksup's parameter tree and torch state dicts
  files     reading .pth/.pt/.safetensors state dicts, writing .safetensors
  transfer  importing a state dict as a run folder; exporting a run with its model card
  cli       `python -m weaksup weights import|export`
"""
