"""Command line: `python -m scripts.publish [--bucket B] [--prefix P] FILE...` uploads FILE to P + name.

Settings and credentials come from the environment (see scripts/publish/settings.py):
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, S3_ENDPOINT, S3_BUCKET.
Exit status 0 when every file was published, 1 with a one-line error when nothing or not all was.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from boto3.s3.transfer import MB, TransferConfig

from scripts.publish.errors import PublishError
from scripts.publish.settings import settings_from_env
from scripts.publish.uploader import DEFAULT_TRANSFER, publish_files


def _size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of bytes") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' must be at least 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.publish",
        description="Upload files to S3 (or S3_ENDPOINT) without ever overwriting an existing object.",
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument("--bucket", help="the bucket (default: $S3_BUCKET)")
    parser.add_argument("--prefix", default="", help="key prefix, e.g. 'releases/' (default: none)")
    parser.add_argument(
        "--multipart-threshold",
        type=_size,
        default=int(DEFAULT_TRANSFER.multipart_threshold),
        help=f"files this big or bigger go in parts (bytes; default {DEFAULT_TRANSFER.multipart_threshold})",
    )
    parser.add_argument(
        "--chunk-size",
        type=_size,
        default=int(DEFAULT_TRANSFER.multipart_chunksize),
        help=f"size of each part (bytes, at least {5 * MB}; default {DEFAULT_TRANSFER.multipart_chunksize})",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = settings_from_env(os.environ, bucket=args.bucket)
        config = TransferConfig(
            multipart_threshold=args.multipart_threshold,
            multipart_chunksize=args.chunk_size,
            max_concurrency=DEFAULT_TRANSFER.max_concurrency,
        )
        uploads = [(path, args.prefix + path.name) for path in args.files]
        publish_files(
            settings.client(), settings.bucket, uploads, config, log=lambda line: print(line, flush=True)
        )
    except PublishError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
