#!/usr/bin/env bash
# Installs what s3drive's build, tests and demo need on a Debian machine:
# fuse3 (fusermount3), rsync and attr (used by tests), and moto's S3 server (PyPI).
set -euo pipefail
need_apt=()
command -v fusermount3 >/dev/null || need_apt+=(fuse3)
command -v rsync >/dev/null || need_apt+=(rsync)
command -v getfattr >/dev/null || need_apt+=(attr)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need_apt[@]}"
fi
if ! python3 -c 'import moto, moto.server, flask; assert moto.__version__ == "5.1.22"' 2>/dev/null; then
  python3 -m pip install -q 'moto[server]==5.1.22'
fi
command -v pyenv >/dev/null && pyenv rehash || true
echo "setup: fuse3, rsync, attr and moto[server] are present"
