#!/usr/bin/env bash
# Task `build-tile`: the Ops Manager tile (`make tile`) around the release tarball given as input, of the
# version in version/version, with bpm's release tarball from bpm-release/release.tgz when given
# (without it the tile builder names the tile <name>-<version>-without-bpm.pivotal, which publish refuses).
#   inputs: source, version, release-candidate/<name>-<version>.tgz, bpm-release (optional)
#   output: tile/<name>-<version>[-without-bpm].pivotal
. "$(dirname "$0")/lib.sh"
need_dir tile
version=$(read_version)
name=$(release_name "$REPO")
release=$(only_file release-candidate '*.tgz')
[ "$(basename "$release")" = "$name-$version.tgz" ] \
    || die "release-candidate/ holds $(basename "$release"), but version/version says $name-$version.tgz"
grep -q '^tile:' "$REPO/Makefile" || die "source/Makefile has no tile target"

if [ -f "$TASK_DIR/bpm-release/release.tgz" ]; then
    export BPM_RELEASE_TARBALL="$TASK_DIR/bpm-release/release.tgz"
else
    unset BPM_RELEASE_TARBALL
fi
# The tile is built around this very tarball, put where `make release` would have written it.
mkdir -p "$REPO/build"
rm -f "$REPO/build/$name-"*.pivotal
cp "$release" "$REPO/build/$name-$version.tgz"
repo_make tile VERSION="$version" RELEASE="$REPO/build/$name-$version.tgz"

tiles=()
while IFS= read -r -d '' path; do tiles+=("$path"); done < <(find "$REPO/build" -maxdepth 1 -type f \
    \( -name "$name-$version.pivotal" -o -name "$name-$version-without-*.pivotal" \) -print0)
[ "${#tiles[@]}" -eq 1 ] || die "make tile wrote ${#tiles[@]} build/$name-$version*.pivotal files, expected one"
tile=${tiles[0]}
cp "$tile" "$TASK_DIR/tile/"
echo "tile: tile/$(basename "$tile")"
