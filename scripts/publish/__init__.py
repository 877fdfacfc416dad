"""Publishing build outputs (release tarballs, tiles) to S3 or an S3-compatible server, never overwriting."""

from scripts.publish.errors import PublishError
from scripts.publish.uploader import PublishedObject, publish_files

__all__ = ["PublishError", "PublishedObject", "publish_files"]
