"""Experiment configs: each module's `get_config(arg)` returns an ml_collections ConfigDict.

Installed with the package, so a config can be named from any directory
(`weaksup train --config tiny:runlocal`) as well as given by path
(`--config configs/tiny.py:runlocal`). The modules are loaded by file, not imported.
"""
