"""The one exception the manifest tools raise for problems a person must fix."""

from __future__ import annotations


class ManifestError(Exception):
    """A bad ops-file, path or variable; the message names the file, the op and the path."""
