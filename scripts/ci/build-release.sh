#!/usr/bin/env bash
# Task `build-release`: the BOSH release tarball (`make release`) of the version in version/version.
#   inputs: source, version    output: release-tarball/<name>-<version>.tgz
. "$(dirname "$0")/lib.sh"
need_dir release-tarball
version=$(read_version)
name=$(release_name "$REPO")

repo_make release VERSION="$version"

tarball="$REPO/build/$name-$version.tgz"
[ -f "$tarball" ] || die "make release wrote no build/$name-$version.tgz"
cp "$tarball" "$TASK_DIR/release-tarball/"
echo "release tarball: release-tarball/$name-$version.tgz"
