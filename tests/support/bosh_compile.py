"""Compile the release's packages the way a BOSH compilation VM does, cached by fingerprint.

For each package, dependencies first: the files its spec selects from src/ and
blobs/ (the release builder's own selection) are copied into a fresh
BOSH_COMPILE_TARGET (/var/vcap/data/compile/<name>), each dependency's compiled
output is mounted at /var/vcap/packages/<dependency>, and `bash -x packaging`
runs there with BOSH_INSTALL_TARGET=/var/vcap/packages/<name>, all inside a
private mount namespace (see vcap_namespace.py), so absolute /var/vcap paths
work and the machine's own /var is untouched. What lands in the install target
is kept.

The cache is .cache/compiled/<name>/<key>/ (install/, compile.log, compile.json);
the log of a compilation that failed is kept in .cache/compiled/failed/.
The key covers the package's fingerprint and its dependencies' keys, as a
director's compiled-package cache does: a package rebuilds when it changes or
when anything it depends on was rebuilt. A compilation is written beside the
cache and renamed into place only when it succeeded, so a failed or interrupted
one leaves nothing behind that a later run could take for finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scripts.release import builder, specs
from tests.support import vcap_namespace

# Bump when the way packages are compiled here changes, so older results are not reused.
COMPILE_FORMAT = "v1"

# What the BOSH agent's compile environment boils down to: a plain PATH and the BOSH_* variables.
_BASE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}

Log = Callable[[str], None]


class CompileError(Exception):
    """A packaging script failed; the message names the package and its log."""


@dataclass(frozen=True)
class CompiledPackage:
    name: str
    fingerprint: str
    cache_key: str
    install_dir: Path
    log_file: Path
    # Seconds the compilation took, whether it ran now or was found in the cache.
    seconds: float
    cached: bool


def compile_order(packages: list[specs.PackageSpec]) -> list[specs.PackageSpec]:
    """Packages with every dependency before its dependents (ties by name, so the order is stable)."""
    by_name = {p.name: p for p in packages}
    ordered: list[specs.PackageSpec] = []
    placed: set[str] = set()

    def place(package: specs.PackageSpec) -> None:
        if package.name in placed:
            return
        for dependency in sorted(package.dependencies):
            place(by_name[dependency])
        placed.add(package.name)
        ordered.append(package)

    for package in sorted(packages, key=lambda p: p.name):
        place(package)
    return ordered


def cache_key(fingerprint: str, dependency_keys: dict[str, str]) -> str:
    parts = [COMPILE_FORMAT, fingerprint, *(f"{name}={key}" for name, key in sorted(dependency_keys.items()))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def compile_release(root: Path, cache_dir: Path, log: Log = print) -> dict[str, CompiledPackage]:
    """Compile every package under root/packages (or take it from the cache), dependencies first."""
    tree = specs.read_tree(root)
    index = specs.SourceIndex(root)
    compiled: dict[str, CompiledPackage] = {}
    for package in compile_order(tree.packages):
        resource = builder.package_resource(package, index)
        fingerprint = resource.fingerprint()
        key = cache_key(fingerprint, {d: compiled[d].cache_key for d in package.dependencies})
        compiled[package.name] = _compile_cached(
            package, index, fingerprint, key, {d: compiled[d] for d in package.dependencies}, cache_dir, log
        )
    return compiled


def _compile_cached(
    package: specs.PackageSpec,
    index: specs.SourceIndex,
    fingerprint: str,
    key: str,
    dependencies: dict[str, CompiledPackage],
    cache_dir: Path,
    log: Log,
) -> CompiledPackage:
    final = cache_dir / package.name / key
    record = final / "compile.json"
    if record.is_file():
        seconds = float(json.loads(record.read_text())["seconds"])
        return CompiledPackage(
            package.name, fingerprint, key, final / "install", final / "compile.log", seconds, cached=True
        )
    reason = vcap_namespace.unavailable()
    if reason:
        raise CompileError(f"cannot compile package '{package.name}': {reason}")
    final.parent.mkdir(parents=True, exist_ok=True)
    # Readable by the unprivileged user a deployment's processes run as.
    for directory in (cache_dir, final.parent):
        directory.chmod(0o755)
    staging = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=final.parent))
    try:
        log(f"compiling package {package.name} ({fingerprint[:12]})")
        seconds = _run_packaging(package, index, fingerprint, dependencies, staging, cache_dir / "failed")
        (staging / "compile.json").write_text(
            json.dumps(
                {
                    "package": package.name,
                    "fingerprint": fingerprint,
                    "dependencies": {d: c.cache_key for d, c in dependencies.items()},
                    "seconds": round(seconds, 1),
                },
                indent=2,
            )
            + "\n"
        )
        staging.chmod(0o755)
        try:
            staging.rename(final)
        except OSError:
            if not record.is_file():
                raise
            # Another run compiled the same key meanwhile; its result is as good as ours.
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log(f"compiled package {package.name} in {seconds:.0f} s")
    return CompiledPackage(
        package.name, fingerprint, key, final / "install", final / "compile.log", seconds, cached=False
    )


def _run_packaging(
    package: specs.PackageSpec,
    index: specs.SourceIndex,
    fingerprint: str,
    dependencies: dict[str, CompiledPackage],
    staging: Path,
    failed_logs: Path,
) -> float:
    """Run the packaging script in a fresh compile dir; the install target is staging/install."""
    install = staging / "install"
    install.mkdir()
    log_file = staging / "compile.log"
    with tempfile.TemporaryDirectory(prefix=f"compile-{package.name}-") as scratch:
        vcap_root = Path(scratch)
        compile_dir = vcap_root / "data" / "compile" / package.name
        compile_dir.mkdir(parents=True)
        # The package archive's content: packaging plus the selected files at their archive paths.
        shutil.copy2(package.dir / "packaging", compile_dir / "packaging")
        for shipped in index.package_files(package):
            target = compile_dir / shipped.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(shipped.path, target, follow_symlinks=False)
        binds: list[tuple[Path, str]] = []
        for name, compiled in {**dependencies, package.name: None}.items():
            (vcap_root / "packages" / name).mkdir(parents=True)
            binds.append((install if compiled is None else compiled.install_dir, f"packages/{name}"))
        env = {
            **_BASE_ENV,
            "BOSH_COMPILE_TARGET": f"{vcap_namespace.VCAP}/data/compile/{package.name}",
            "BOSH_INSTALL_TARGET": f"{vcap_namespace.VCAP}/packages/{package.name}",
            "BOSH_PACKAGE_NAME": package.name,
            "BOSH_PACKAGE_VERSION": fingerprint,
        }
        argv = vcap_namespace.command(
            vcap_root,
            ["bash", "-c", 'cd "$BOSH_COMPILE_TARGET" && exec bash -x packaging'],
            binds=binds,
        )
        started = time.monotonic()
        with log_file.open("wb") as out:
            result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
        seconds = time.monotonic() - started
    if result.returncode != 0:
        # Keep the log where it can be read, outside the cache proper; the caller removes staging.
        failed_logs.mkdir(parents=True, exist_ok=True)
        kept = failed_logs / f"{package.name}-{fingerprint[:12]}.log"
        shutil.copyfile(log_file, kept)
        # The last line the script printed itself, not bash -x's trace of the command that failed.
        lines = log_file.read_text(errors="replace").splitlines()
        said = [line for line in lines if line.strip() and not line.startswith("+")][-1:] or ["(no output)"]
        raise CompileError(
            f"package '{package.name}': packaging exited with {result.returncode} after {seconds:.0f} s; "
            f"last message: {said[0]!r}; full log: {kept}"
        )
    return seconds


def default_cache_dir(root: Path) -> Path:
    return Path(os.environ.get("BOSH_COMPILE_CACHE", root / ".cache" / "compiled"))
