#!/usr/bin/env bash
# Replays a newcomer's first hour as far as this machine allows without a container: a fresh
# clone of the committed HEAD (no .venv/, no target/), an empty CARGO_HOME (every crate and
# s3s-fs fetched and built again), a PATH with only rustup's cargo/rustc/rustdoc/rustup and the system
# directories, then the README's two commands: scripts/demo.sh (with S3DRIVE_DEMO_CHECK=1: it
# checks what it would show and exits) and scripts/test.sh. Not replayed: apt packages already
# installed stay installed (setup.sh only checks them), and Rust comes from the existing rustup.
# Takes two builds from scratch (20-30 minutes on 2 cores) and a few GiB under /tmp.
#   scripts/fresh-machine.sh [--demo-only]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
need_gib=8
free_gib=$(df -Pk /tmp | awk 'NR==2 {print int($4 / 1048576)}')
[ "$free_gib" -ge "$need_gib" ] || { echo "fresh-machine: needs ${need_gib} GiB free in /tmp, has ${free_gib}" >&2; exit 1; }
work=$(mktemp -d /tmp/s3drive-fresh.XXXXXX)
cleanup() {
  # Nothing may stay mounted under the tree before it is removed.
  if ! grep -q " $work" /proc/mounts; then rm -rf "$work"; else echo "fresh-machine: left $work (mounted)" >&2; fi
}
trap cleanup EXIT
step() { echo "fresh-machine: $*" >&2; }

step "cloning HEAD of $repo into $work"
git clone -q "$repo" "$work/s3drive"
export RUSTUP_HOME=${RUSTUP_HOME:-$(rustup show home)}
export CARGO_HOME="$work/cargo-home"
mkdir -p "$CARGO_HOME/bin" "$work/bin"
for t in cargo rustc rustdoc rustup; do ln -s "$(command -v "$t")" "$work/bin/$t"; done
export PATH="$work/bin:$CARGO_HOME/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
unset MOTO_SERVER VIRTUAL_ENV CARGO_TARGET_DIR
cd "$work/s3drive"
for t in s3s-fs moto_server; do
  if command -v "$t" >/dev/null; then step "note: $t is already on the clean PATH ($(command -v "$t"))"; fi
done

step "README command 1: scripts/demo.sh"
S3DRIVE_DEMO_CHECK=1 S3DRIVE_DEMO_PORT=${S3DRIVE_DEMO_PORT:-9556} scripts/demo.sh
[ -x .venv/bin/moto_server ] && [ -x "$CARGO_HOME/bin/s3s-fs" ] || { step "setup did not install moto and s3s-fs"; exit 1; }
if [ "${1:-}" = --demo-only ]; then step "passed (demo only)"; exit 0; fi

step "README command 2: scripts/test.sh"
scripts/test.sh
step "passed: the demo and the whole suite, from a fresh clone with an empty CARGO_HOME"
