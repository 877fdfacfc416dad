#!/usr/bin/env bash
# Task `final-release`: a final release of the version in version/version (x.y.z), made from a clean
# clone of source in source-final: new blobs and archives go to the blobstore of config/final.yml
# (credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY; S3_ENDPOINT for an S3-compatible server), and
# the records (releases/, .final_builds/, config/blobs.yml) are committed there for the job to push.
# The final release must hold the same jobs and packages as the tested one in release-candidate/.
#   inputs: source, version, release-candidate    outputs: final-release/<name>-<version>.tgz, source-final
. "$(dirname "$0")/lib.sh"
need_dir final-release
need_dir source-final
version=$(read_version)
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "version/version holds '$version'; a final release needs x.y.z"
if [ -z "${AWS_ACCESS_KEY_ID:-}" ] || [ -z "${AWS_SECRET_ACCESS_KEY:-}" ]; then
    die "no blobstore credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
fi
candidate=$(only_file release-candidate '*.tgz')
[ -z "$(ls -A "$TASK_DIR/source-final")" ] || die "source-final/ is not empty"

bin=$(venv_bin)
final="$TASK_DIR/source-final"
git clone --quiet "$REPO" "$final"
# Blobs are git-ignored: reuse those already fetched (each is checked against its sha256 before use).
if [ -d "$REPO/blobs" ]; then
    cp -a "$REPO/blobs" "$final/"
fi
if [ -n "${S3_ENDPOINT:-}" ]; then
    # An S3-compatible blobstore: its address goes in the git-ignored config/private.yml.
    (cd "$REPO" && "$bin/python" -m scripts.ci.private_blobstore "$S3_ENDPOINT" "$final")
fi

name=$(release_name "$final")
repo_make -C "$final" final-release VERSION="$version"
tarball="$final/build/$name-$version.tgz"
[ -f "$tarball" ] || die "make final-release wrote no build/$name-$version.tgz"

(cd "$REPO" && "$bin/python" -m scripts.ci.same_release "$candidate" "$tarball")

git -C "$final" add releases .final_builds config/blobs.yml
git -C "$final" -c user.name="${GIT_AUTHOR_NAME:-postgres-service CI}" \
    -c user.email="${GIT_AUTHOR_EMAIL:-ci@postgres-service.invalid}" \
    commit --quiet -m "Final release $name $version"
cp "$tarball" "$TASK_DIR/final-release/"
echo "final release: final-release/$name-$version.tgz, records committed in source-final ($(git -C "$final" rev-parse --short HEAD))"
