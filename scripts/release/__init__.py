"""Our own `bosh create-release`: BOSH release tarballs, final releases and pinned blobs.

The release directory is the repository root (jobs/, packages/, src/, blobs/,
config/). Run it as ``python -m scripts.release --help``. The modules each do
one thing: ``globbing`` (spec file patterns), ``fingerprint`` (the BOSH CLI's
fingerprint), ``tarball`` (deterministic .tgz), ``specs`` (reading and checking
job and package specs), ``manifest`` (release.MF), ``builder`` (a dev or final
release tarball), ``final`` (.final_builds/ and releases/), ``blobstore`` (S3),
``blobs`` (config/blobs.yml pins) and ``fetch`` (blobs from the package registries).
"""

from scripts.release.errors import ReleaseError

__all__ = ["ReleaseError"]
