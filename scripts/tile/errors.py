"""The one error the tile build raises: a message, and where in tile.yml it comes from."""

from __future__ import annotations

from pathlib import Path


class TileError(Exception):
    """A tile that must not be written. ``line`` is 1-based, as editors count."""

    def __init__(self, message: str, source: Path | None = None, line: int | None = None) -> None:
        self.message = message
        self.source = source
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.source is not None and self.line is not None:
            return f"{self.source.name}:{self.line}: {self.message}"
        if self.source is not None:
            return f"{self.source.name}: {self.message}"
        return self.message
