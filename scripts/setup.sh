#!/usr/bin/env bash
# Installs what s3drive's build, tests and demo need on Debian or Ubuntu, and checks each:
# - apt: fuse3 (fusermount3), a C compiler and pkg-config (crates with C parts), python3-venv,
#   rsync, attr (getfattr/setfattr), curl and openssl (used by the tests);
# - moto's S3 server (PyPI moto[server]) in a project-local virtualenv, .venv/ (Debian's Python
#   refuses system-wide pip installs); the tests and the demo use .venv/bin/moto_server;
# - s3s-fs (crates.io), which checks presigned-URL signatures and expiry where moto does not.
# Rust itself comes from rustup (https://rustup.rs): Debian's packaged Rust is too old.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { echo "setup: $*" >&2; }

if ! command -v cargo >/dev/null; then
  echo "setup: Rust is missing. Install it with rustup:" >&2
  echo "  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y && . ~/.cargo/env" >&2
  exit 1
fi
want=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
have=$(rustc --version | awk '{print $2}')
if [ -n "$want" ] && [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -1)" != "$want" ]; then
  echo "setup: Rust $have is older than the $want s3drive needs: run 'rustup update stable'" >&2
  exit 1
fi

need_apt=()
command -v fusermount3 >/dev/null || need_apt+=(fuse3)
command -v cc >/dev/null || need_apt+=(build-essential)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v rsync >/dev/null || need_apt+=(rsync)
command -v getfattr >/dev/null || need_apt+=(attr)
command -v curl >/dev/null || need_apt+=(curl)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  step "installing ${need_apt[*]} (apt)"
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need_apt[@]}"
fi

venv=.venv
if ! "$venv/bin/python" -c 'import moto, moto.server, flask; assert moto.__version__ == "5.1.22"' 2>/dev/null; then
  step "installing moto[server] 5.1.22 into $venv (pip)"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check 'moto[server]==5.1.22'
fi

if ! command -v s3s-fs >/dev/null; then
  step "building s3s-fs 0.14.1 (cargo install; a few minutes)"
  cargo install s3s-fs --version 0.14.1 --features binary --locked
fi

# Check that each is really there and runs.
missing=()
for c in fusermount3 cc rsync getfattr setfattr curl openssl s3s-fs "$venv/bin/moto_server"; do
  command -v "$c" >/dev/null || missing+=("$c")
done
"$venv/bin/moto_server" --help >/dev/null 2>&1 || missing+=("$venv/bin/moto_server (does not run)")
[ -e /dev/fuse ] || missing+=("/dev/fuse (load the fuse module: modprobe fuse)")
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: still missing: ${missing[*]}" >&2
  exit 1
fi
step "fuse3, a C compiler, rsync, attr, curl, moto[server] ($venv) and s3s-fs are present"
