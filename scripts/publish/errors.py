"""The one exception publishing raises for problems a person must fix."""

from __future__ import annotations


class PublishError(Exception):
    """Missing credentials, a missing bucket, a version already published, a failed upload.

    The message names the offending file, bucket or key in one line and never
    carries a credential; the CLI prints it without a traceback.
    """
