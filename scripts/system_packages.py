#!/usr/bin/env python3
"""Make sure the Debian packages the tests and `make run` need are installed.

Run as root it installs what is missing with apt-get; otherwise it prints the
exact command to run and exits non-zero. Standard library only: it runs
before the virtual environment exists.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

PG_MAJOR = "15"

# Where Debian puts architecture-specific headers (ffi.h), e.g. x86_64-linux-gnu.
MULTIARCH_INCLUDE = Path("/usr/include") / f"{platform.machine()}-linux-gnu"

# (package, a file that proves it is installed)
REQUIRED = [
    (f"postgresql-{PG_MAJOR}", Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin/postgres")),
    (f"postgresql-client-{PG_MAJOR}", Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin/psql")),
    ("postgresql-contrib", Path(f"/usr/share/postgresql/{PG_MAJOR}/extension/citext.control")),
    # BOSH job templates are ERB; the template tests render them with Ruby.
    ("ruby", Path("/usr/bin/ruby")),
    # The template tests check every rendered job script with shellcheck.
    ("shellcheck", Path("/usr/bin/shellcheck")),
    # pg_auto_failover for the HA tests: the monitor's extension, and pg_autoctl
    # (Debian ships it in its own package, which the extension depends on).
    (f"postgresql-{PG_MAJOR}-auto-failover", Path(f"/usr/lib/postgresql/{PG_MAJOR}/lib/pgautofailover.so")),
    ("pg-auto-failover-cli", Path("/usr/bin/pg_autoctl")),
    # The compilation tests run the release's packaging scripts, which build CPython and
    # PostgreSQL from source with what a BOSH stemcell provides: compilers, make, and
    # these libraries' headers.
    ("build-essential", Path("/usr/share/build-essential/list")),
    ("pkg-config", Path("/usr/bin/pkg-config")),
    ("bzip2", Path("/usr/bin/bzip2")),  # the PostgreSQL source tarball is .tar.bz2
    ("libssl-dev", Path("/usr/include/openssl/ssl.h")),
    ("zlib1g-dev", Path("/usr/include/zlib.h")),
    ("libreadline-dev", Path("/usr/include/readline/readline.h")),
    ("libncurses-dev", Path("/usr/include/ncurses.h")),
    ("uuid-dev", Path("/usr/include/uuid/uuid.h")),
    ("libicu-dev", Path("/usr/include/unicode/ucol.h")),
    ("libffi-dev", MULTIARCH_INCLUDE / "ffi.h"),
    ("libbz2-dev", Path("/usr/include/bzlib.h")),
    ("liblzma-dev", Path("/usr/include/lzma.h")),
]


def missing_packages() -> list[str]:
    return [pkg for pkg, proof in REQUIRED if not proof.exists()]


def main() -> int:
    missing = missing_packages()
    if not missing:
        return 0
    command = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print(
            "missing system packages: " + ", ".join(missing) + "\n"
            "install them (as root) with:\n  " + " ".join(command),
            file=sys.stderr,
        )
        return 1
    print("installing system packages: " + ", ".join(missing), flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(command, check=True, env=env)
    # Debian's package starts a cluster of its own; the tests make their own
    # clusters, so stop it rather than leave a server nobody asked for.
    if shutil.which("pg_ctlcluster"):
        subprocess.run(["pg_ctlcluster", PG_MAJOR, "main", "stop"], check=False, capture_output=True)
    still = missing_packages()
    if still:
        print("still missing after apt-get: " + ", ".join(still), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
