"""`python -m scripts.ci.same_release TESTED.tgz FINAL.tgz`: does the final release ship what was tested?

A final release is built again from the same commit as the tested dev release; its jobs, packages and
license must have the same fingerprints (the version differs, the content must not). Exit status 0 when
they match, 1 with one line per difference when they do not.
"""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path
from typing import Any

import yaml


class NotARelease(Exception):
    pass


def release_manifest(tarball: Path) -> dict[str, Any]:
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            member = next((m for m in archive.getmembers() if m.name.lstrip("./") == "release.MF"), None)
            handle = archive.extractfile(member) if member is not None else None
            if handle is None:
                raise NotARelease(f"{tarball} has no release.MF; is it a BOSH release tarball?")
            manifest = yaml.safe_load(handle.read())
    except (OSError, tarfile.TarError) as exc:
        raise NotARelease(f"{tarball} cannot be read as a release tarball: {exc}") from None
    if not isinstance(manifest, dict):
        raise NotARelease(f"{tarball}: release.MF is not a mapping")
    return manifest


def fingerprints(manifest: dict[str, Any]) -> dict[str, str]:
    found = {
        f"{kind[:-1]} {item['name']}": str(item["fingerprint"])
        for kind in ("jobs", "packages")
        for item in manifest.get(kind) or []
    }
    if manifest.get("license"):
        found["license"] = str(manifest["license"]["fingerprint"])
    return found


def differences(tested: dict[str, Any], final: dict[str, Any]) -> list[str]:
    old, new = fingerprints(tested), fingerprints(final)
    problems = []
    for name in sorted(old.keys() | new.keys()):
        if name not in new:
            problems.append(f"{name} was tested but is not in the final release")
        elif name not in old:
            problems.append(f"{name} is in the final release but was not tested")
        elif old[name] != new[name]:
            problems.append(f"{name} differs: tested {old[name][:12]}, final {new[name][:12]}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m scripts.ci.same_release TESTED.tgz FINAL.tgz", file=sys.stderr)
        return 2
    try:
        tested, final = (release_manifest(Path(arg)) for arg in argv)
    except NotARelease as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    problems = differences(tested, final)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(
        f"final release {final['name']}/{final['version']} has the jobs and packages "
        f"of the tested {tested['version']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
