#!/usr/bin/env bash
# Installs what s3drive's build, tests and demo need on a Debian machine:
# fuse3 (fusermount3), rsync, attr and curl (used by tests), moto's S3 server (PyPI), and
# s3s-fs (crates.io), which checks presigned-URL signatures and expiry where moto does not.
set -euo pipefail
need_apt=()
command -v fusermount3 >/dev/null || need_apt+=(fuse3)
command -v rsync >/dev/null || need_apt+=(rsync)
command -v getfattr >/dev/null || need_apt+=(attr)
command -v curl >/dev/null || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need_apt[@]}"
fi
if ! python3 -c 'import moto, moto.server, flask; assert moto.__version__ == "5.1.22"' 2>/dev/null; then
  python3 -m pip install -q 'moto[server]==5.1.22'
fi
command -v pyenv >/dev/null && pyenv rehash || true
if ! command -v s3s-fs >/dev/null; then
  cargo install -q s3s-fs --version 0.14.1 --features binary --locked
fi
echo "setup: fuse3, rsync, attr, curl, moto[server] and s3s-fs are present"
