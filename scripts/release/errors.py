"""The one exception the release tools raise for problems a person must fix."""

from __future__ import annotations


class ReleaseError(Exception):
    """A problem in the release directory, its specs, blobs or blobstore.

    The message names the offending job, package, file or blob and says what to
    do; the CLI prints it without a traceback.
    """
