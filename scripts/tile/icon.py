"""The tile's icon: a small PNG drawn here, so the repository holds no binary and the bytes never vary."""

from __future__ import annotations

import base64
import struct
import zlib

SIZE = 64
BLUE = (0x33, 0x67, 0x91)  # PostgreSQL's blue
WHITE = (0xFF, 0xFF, 0xFF)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _pixel(x: int, y: int) -> tuple[int, int, int]:
    # A white disc (a database seen from above) on blue.
    centre = (SIZE - 1) / 2
    return WHITE if (x - centre) ** 2 + (y - centre) ** 2 <= (SIZE * 0.3) ** 2 else BLUE


def png() -> bytes:
    rows = b"".join(b"\x00" + b"".join(bytes(_pixel(x, y)) for x in range(SIZE)) for y in range(SIZE))
    header = struct.pack(">IIBBBBB", SIZE, SIZE, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows, 9))
        + _chunk(b"IEND", b"")
    )


def icon_image() -> str:
    """Ops Manager's icon_image: the PNG, base64-encoded."""
    return base64.b64encode(png()).decode("ascii")
