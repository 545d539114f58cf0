"""Test set-up: eight host CPU devices, so sharding tests see a real mesh."""

import os

# Must happen before JAX initialises its backend anywhere in the test session.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
