"""Run a command that sees a directory of ours at /var/vcap, in a private mount namespace.

Compiled BOSH packages carry absolute /var/vcap/packages/... paths (a virtualenv's
interpreter link and script shebangs, a package's use of its dependencies), so
packaging scripts and the processes of a local deployment must see the layout
a BOSH VM has. Each command runs under `unshare --mount` (util-linux), which
gives it mount points of its own: there a tmpfs covers /var, the host's /var
entries are bound back into it one by one (so /var/lib, /var/tmp and the rest
stay as they are), and our directory is bound at /var/vcap. Nothing on the
machine changes: the host never gets a /var/vcap, and the mounts vanish with
the command. The command is exec'd, so its PID is the one the caller started.

Needs root (mounting); `unavailable()` says why it cannot run.
"""

from __future__ import annotations

import atexit
import functools
import os
import pwd
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

VCAP = "/var/vcap"

# $1: our /var/vcap; $2: an empty directory where the host's /var stays reachable
# while the tmpfs covers it; $3: how many (source, target) bind pairs follow; then
# the pairs (targets relative to /var/vcap, already existing there); then the command.
_SETUP = r"""
set -euo pipefail
vcap_root=$1 stash=$2 n_binds=$3
shift 3
mount --rbind /var "$stash"
mount -t tmpfs -o mode=0755 vcap-var /var
shopt -s nullglob dotglob
for entry in "$stash"/*; do
  name=${entry##*/}
  if [[ -L $entry ]]; then
    cp -P "$entry" "/var/$name"
  elif [[ -d $entry ]]; then
    mkdir "/var/$name"
    mount --rbind "$entry" "/var/$name"
  else
    touch "/var/$name"
    mount --bind "$entry" "/var/$name"
  fi
done
umount --recursive --lazy "$stash"
mkdir /var/vcap
mount --bind "$vcap_root" /var/vcap
for ((i = 0; i < n_binds; i++)); do
  mount --bind "$1" "/var/vcap/$2"
  shift 2
done
exec "$@"
"""


def unavailable() -> str | None:
    """Why commands cannot run in a namespace here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root to mount (unshare --mount, mount --bind)"
    for tool in ("unshare", "mount", "setpriv"):
        if shutil.which(tool) is None:
            return f"needs {tool} (util-linux)"
    return None


@functools.cache
def _stash_dir() -> str:
    # One empty directory per test process; each namespace mounts over it privately.
    path = tempfile.mkdtemp(prefix="host-var-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def command(
    vcap_root: Path,
    argv: Sequence[str],
    *,
    binds: Sequence[tuple[Path, str]] = (),
    user: str | None = None,
) -> list[str]:
    """The argv that runs `argv` with vcap_root at /var/vcap.

    `binds` mounts more directories inside it (source, path relative to /var/vcap;
    the target must exist). `user` drops to that OS user, with its own group and no
    others, just before exec, as bpm starts a job's processes.
    """
    if user is not None:
        pw = pwd.getpwnam(user)
        argv = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", "--", *argv]
    pairs = [item for source, target in binds for item in (str(source), target)]
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "bash",
        "-c",
        _SETUP,
        "vcap-namespace",
        str(vcap_root),
        _stash_dir(),
        str(len(binds)),
        *pairs,
        *argv,
    ]
