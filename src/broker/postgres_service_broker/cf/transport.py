"""JSON over HTTP(S) with the standard library: timeouts, TLS options, and no redirects.

Both UAA and the Cloud Controller are reached through here. Redirects are not
followed on purpose: urllib would replay the ``Authorization`` header to
wherever a redirect points, and neither API redirects its callers.
"""

from __future__ import annotations

import json
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import urlsplit


class TransportError(Exception):
    """The server could not be reached or did not answer in time; the message names the URL."""


@dataclass(frozen=True)
class TlsOptions:
    """How to check the server's certificate.

    ``ca_cert`` is PEM text trusted in addition to the system's CAs (BOSH
    properties carry certificates as text, not paths).
    """

    skip_ssl_validation: bool = False
    ca_cert: str | None = None

    def context(self) -> ssl.SSLContext:
        if self.skip_ssl_validation:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        ctx = ssl.create_default_context()
        if self.ca_cert:
            ctx.load_verify_locations(cadata=self.ca_cert)
        return ctx


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        """The body as JSON, or None when it is empty or not JSON (error pages, proxies)."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class HttpTransport:
    """Sends one request at a time; every 2xx-5xx answer comes back as an `HttpResponse`."""

    tls: TlsOptions = field(default_factory=TlsOptions)
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=self.tls.context()),
            _NoRedirect(),
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> HttpResponse:
        scheme = urlsplit(url).scheme
        if scheme not in ("http", "https"):
            raise TransportError(f"{method} {url}: only http and https URLs are supported")
        req = urllib.request.Request(  # noqa: S310 - the scheme was checked just above
            url, data=body, method=method, headers=dict(headers or {})
        )
        try:
            with self._opener.open(req, timeout=self.timeout_s) as resp:
                return HttpResponse(resp.status, resp.headers, resp.read())
        except urllib.error.HTTPError as exc:
            # 4xx/5xx (and refused redirects) are answers, not transport failures.
            with exc:
                return HttpResponse(exc.code, exc.headers, exc.read())
        except urllib.error.URLError as exc:
            raise TransportError(f"{method} {url}: {_reason(exc.reason)}") from None
        except TimeoutError:
            raise TransportError(f"{method} {url}: no answer within {self.timeout_s:g}s") from None
        except (ConnectionError, OSError) as exc:
            raise TransportError(f"{method} {url}: {_reason(exc)}") from None

    def json_request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> HttpResponse:
        all_headers = {"Accept": "application/json", **(headers or {})}
        data = None
        if json_body is not None:
            data = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        return self.request(method, url, headers=all_headers, body=data)


def _reason(reason: object) -> str:
    if isinstance(reason, ssl.SSLCertVerificationError):
        return (
            f"the server's TLS certificate was not accepted ({reason.verify_message}); "
            "give its CA in ca_cert, or set skip_ssl_validation: true"
        )
    if isinstance(reason, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (is the URL right and the server running?)"
    if isinstance(reason, socket.gaierror):
        return f"cannot resolve the host name ({reason.strerror})"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason)
