"""A real S3-compatible server for the tests: moto in server mode, on a free 127.0.0.1 port."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import requests
from moto.server import ThreadedMotoServer

ACCESS_KEY = "AKIATESTRELEASEBUILDER"
SECRET_KEY = "s3cr3t-that-must-never-be-logged"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class S3Server:
    host: str
    port: int

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=f"http://{self.host}:{self.port}",
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )


@contextmanager
def running_s3_server() -> Iterator[S3Server]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        # moto keeps its state per process, not per server: start each server empty.
        requests.post(f"http://{host}:{port}/moto-api/reset", timeout=10).raise_for_status()
        yield S3Server(host, port)
    finally:
        server.stop()
