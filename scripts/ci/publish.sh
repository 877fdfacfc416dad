#!/usr/bin/env bash
# Task `publish`: the final release tarball and tile uploaded through `python -m scripts.publish`
# (S3_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, S3_ENDPOINT; see
# scripts/publish/settings.py) under PUBLISH_PREFIX; an existing version is never overwritten.
#   inputs: source, final-release/<name>-<version>.tgz, final-tile/<name>-<version>.pivotal
. "$(dirname "$0")/lib.sh"
release=$(only_file final-release '*.tgz')
tile=$(only_file final-tile '*.pivotal')
case "$(basename "$tile")" in
    *-without-*) die "final-tile/$(basename "$tile") lacks a release tarball Ops Manager needs; give build-tile its bpm-release input" ;;
esac
[ "$(basename "$release" .tgz)" = "$(basename "$tile" .pivotal)" ] \
    || die "final-release/$(basename "$release") and final-tile/$(basename "$tile") are not the same version"
bin=$(venv_bin)
cd "$REPO" || die "no source/ directory"
"$bin/python" -m scripts.publish --prefix "${PUBLISH_PREFIX:-}" "$release" "$tile"
