# Shared by the task scripts in scripts/ci/ (sourced, not run).
#
# A task script runs in the directory that holds the task's inputs and outputs, as Concourse lays them
# out: source/ (this repository), version/version, release-candidate/*.tgz, and empty output
# directories. On a laptop, make such a directory and run the script from it (see ci/README.md).
#
# CI_VENV: a ready dev environment (made from requirements/dev.lock, e.g. a checkout's .venv) to use
# instead of creating source/.venv; it is used as it is, never reinstalled.

set -euo pipefail

TASK_DIR=$(pwd)
REPO="$TASK_DIR/source"

die() {
    echo "error: $*" >&2
    exit 1
}

need_dir() {
    [ -d "$TASK_DIR/$1" ] || die "no $1/ directory here ($TASK_DIR): run from the directory holding the task's inputs and outputs"
}

# The one file of the given input directory matching a glob, e.g. `only_file release-candidate '*.tgz'`.
only_file() {
    need_dir "$1"
    local matches=()
    while IFS= read -r -d '' path; do matches+=("$path"); done \
        < <(find "$TASK_DIR/$1" -maxdepth 1 -type f -name "$2" -print0)
    [ "${#matches[@]}" -eq 1 ] || die "$1/ holds ${#matches[@]} files named $2, expected exactly one"
    echo "${matches[0]}"
}

# The version from the semver input (version/version), checked before anything is built with it.
read_version() {
    [ -f "$TASK_DIR/version/version" ] || die "no version/version file: the task needs the semver input"
    local version
    version=$(tr -d '[:space:]' < "$TASK_DIR/version/version")
    [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?$ ]] \
        || die "version/version holds '$version', not a semantic version such as 1.2.0 or 1.2.0-rc.3"
    echo "$version"
}

# The release's name, from config/final.yml of the given release directory.
release_name() {
    local name
    name=$(sed -n 's/^name:[[:space:]]*//p' "$1/config/final.yml" | head -n1)
    [ -n "$name" ] || die "$1/config/final.yml has no name"
    echo "$name"
}

# Keep pip's downloads in the task cache between builds, when Concourse gives one.
if [ -d "$TASK_DIR/pip-cache" ]; then
    export PIP_CACHE_DIR="$TASK_DIR/pip-cache"
fi

# The dev environment: CI_VENV when given, else source/.venv, created from the pinned versions if missing.
dev_venv() {
    if [ -n "${CI_VENV:-}" ]; then
        [ -x "$CI_VENV/bin/python" ] || die "CI_VENV=$CI_VENV is not a virtualenv (no bin/python)"
        echo "$CI_VENV"
    else
        make -C "$REPO" --no-print-directory venv >&2
        echo "$REPO/.venv"
    fi
}

venv_bin() {
    local venv
    venv=$(dev_venv)
    echo "$venv/bin"
}

# `make` in a release directory (default: source/; `repo_make -C DIR target...` for another) with the
# dev environment above; -o takes that environment as installed, whatever the file dates say.
repo_make() {
    local dir="$REPO" venv
    if [ "${1:-}" = "-C" ]; then
        dir=$2
        shift 2
    fi
    venv=$(dev_venv)
    make -C "$dir" --no-print-directory VENV="$venv" -o "$venv/.installed" "$@"
}

# pytest with a junit report in the given output directory: `make test`, or the selection in
# CI_PYTEST_ARGS (pytest arguments, split on spaces) instead; $2 is the default selection, if any.
run_tests() {
    local report_dir=$1 default_selection=${2:-}
    need_dir "$report_dir"
    export PYTEST_ADDOPTS="--junitxml=$TASK_DIR/$report_dir/junit.xml ${PYTEST_ADDOPTS:-}"
    local selection=${CI_PYTEST_ARGS:-$default_selection}
    if [ -z "$selection" ]; then
        repo_make test
        return
    fi
    repo_make system-packages
    local args bin
    read -ra args <<< "$selection"
    bin=$(venv_bin)
    (cd "$REPO" && "$bin/pytest" "${args[@]}")
}
