"""Region JPEG decoding: only the rectangle a crop keeps, through libjpeg-turbo.

A random-resized crop keeps on average about half of a picture, yet a plain decoder
reconstructs all of it. `decode_region` asks libjpeg-turbo for the crop alone (as
TensorFlow's decode_and_crop_jpeg does): `jpeg_crop_scanline` limits the inverse DCT and
colour conversion to the iMCU columns that hold it, `jpeg_skip_scanlines` entropy-decodes
the rows above it without reconstructing them, and decoding stops at its last row. On
500x375 photos cropped for 224 px training this takes ~490 us against ~640 us for the
whole picture (benchmarks/input_pipeline.py measures the pipeline effect).

The pixels are the ones a full decode gives, bit for bit: the region is decoded with a
margin of `MARGIN` pixels on every side (so that chroma upsampling sees the same
neighbours) and the margin is cut off.

The decoder is a small C file (`weaksup/native/jpeg_region.c`) that `make setup` compiles
(`python -m weaksup jpeg build`) against the system libjpeg-turbo (Debian:
libjpeg62-turbo-dev) into the cache directory, keyed by the source's hash. Where it is not
built, `available()` is False and callers decode the whole picture instead.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import math
import sys
from pathlib import Path

import numpy as np

from weaksup import console, native_build

log = logging.getLogger(__name__)

SOURCE = native_build.NATIVE_DIR / "jpeg_region.c"
BuildError = native_build.BuildError  # the C decoder did not compile
MARGIN = 2
# libjpeg-turbo widens a column crop to iMCU boundaries: at most one iMCU (<= 32 pixels at
# full scale for 4:2:0, 4:1:1 sampling) on the left; the buffer leaves room for it.
_SLACK = 64
_MSG_LEN = 200


class RegionDecodeError(ValueError):
    """libjpeg-turbo refused the file or the region (the caller decodes the whole file)."""


def library_path() -> Path:
    """Where the compiled decoder for the current source lives."""
    return native_build.library_path(SOURCE)


def build(force: bool = False) -> Path:
    """Compiles the decoder (atomically: a half-written library is never at the final path)."""
    target = library_path()
    if target.exists() and not force:
        return target
    native_build.compile_library(SOURCE, target, cxx=False, flags=["-O2"], libs=["-ljpeg"],
                                 provided_by="Debian libjpeg62-turbo-dev")
    global _LIB, _LOAD_ERROR
    _LIB, _LOAD_ERROR = None, None
    return target


_LIB: ctypes.CDLL | None = None
_LOAD_ERROR: str | None = None


def _lib() -> ctypes.CDLL | None:
    global _LIB, _LOAD_ERROR
    if _LIB is None and _LOAD_ERROR is None:
        path = library_path()
        if not path.exists():
            _LOAD_ERROR = f"{path} is not built (run `python -m weaksup jpeg build`)"
            return None
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as e:
            _LOAD_ERROR = f"{path}: {e}"
            return None
        u8p, cint, culong = ctypes.c_void_p, ctypes.c_int, ctypes.c_ulong
        lib.weaksup_jpeg_decode_region.restype = cint
        lib.weaksup_jpeg_decode_region.argtypes = [
            ctypes.c_char_p, culong, cint, cint, cint, cint, cint, u8p, culong, culong,
            ctypes.POINTER(cint), ctypes.c_char_p,
        ]
        _LIB = lib
    return _LIB


def available() -> bool:
    """Whether the compiled decoder is built and loads."""
    return _lib() is not None


def unavailable_reason() -> str | None:
    """Why `available()` is False (None when it is True)."""
    _lib()
    return _LOAD_ERROR


def scaled_size(height: int, width: int, scale_num: int) -> tuple[int, int]:
    """Picture size when decoded at DCT scale scale_num/8 (libjpeg rounds up)."""
    return math.ceil(height * scale_num / 8), math.ceil(width * scale_num / 8)


def decode_region(
    data: bytes, left: int, top: int, right: int, bottom: int, *, scale_num: int = 8,
    height: int, width: int,
) -> np.ndarray:
    """Pixels [top:bottom, left:right] of the picture decoded at scale scale_num/8: uint8 RGB.

    `height`/`width` are the picture's size at that scale (`scaled_size` of the header's).
    Identical to decoding the whole picture at that scale and slicing. Raises
    RegionDecodeError when libjpeg-turbo rejects the file (also on its corrupt-data
    warnings) or the region lies outside the picture.
    """
    lib = _lib()
    if lib is None:
        raise RegionDecodeError(f"region decoder unavailable: {_LOAD_ERROR}")
    if not (0 <= left < right <= width and 0 <= top < bottom <= height):
        raise RegionDecodeError(f"region ({left}, {top}, {right}, {bottom}) outside {width}x{height}")
    lo_x, lo_y = max(left - MARGIN, 0), max(top - MARGIN, 0)
    hi_x, hi_y = min(right + MARGIN, width), min(bottom + MARGIN, height)
    cols, rows = hi_x - lo_x, hi_y - lo_y
    buf = np.empty((rows, cols + _SLACK, 3), np.uint8)
    info = (ctypes.c_int * 2)()
    msg = ctypes.create_string_buffer(_MSG_LEN)
    rc = lib.weaksup_jpeg_decode_region(
        data, len(data), int(scale_num), lo_x, lo_y, cols, rows,
        buf.ctypes.data, buf.strides[0], buf.nbytes, info, msg,
    )
    if rc:
        raise RegionDecodeError(msg.value.decode(errors="replace"))
    x0 = left - int(info[0])  # first decoded column is info[0] <= lo_x
    return buf[top - lo_y:bottom - lo_y, x0:x0 + (right - left)]


def main(argv: list[str]) -> int:
    console.ensure_setup()  # status lines are log records: shown unless -q
    parser = argparse.ArgumentParser(prog="python -m weaksup jpeg", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="compile the region decoder into the cache directory")
    b.add_argument("--force", action="store_true", help="recompile even when built")
    sub.add_parser("status", help="say whether the region decoder is built and loads")
    args = parser.parse_args(argv)
    if args.cmd == "build":
        try:
            path = build(force=args.force)
        except BuildError as e:
            print(f"jpeg: {e}", file=sys.stderr)
            return 1
        if not available():
            print(f"jpeg: built {path} but it does not load: {unavailable_reason()}", file=sys.stderr)
            return 1
        log.info(f"jpeg: region decoder at {path}")
        return 0
    reason = unavailable_reason()
    print(f"jpeg: region decoder {'available at ' + str(library_path()) if reason is None else 'unavailable: ' + reason}")
    return 0 if reason is None else 1
