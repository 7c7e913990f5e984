#!/usr/bin/env bash
# s3drive on a distributed S3 server: a 3-node Garage cluster (replication factor 3, consistent
# mode, all on 127.0.0.1), with one node killed (SIGKILL) in the middle of a workload.
#
#   bench/cluster.sh                 about 3 minutes; needs garage on PATH (see bench/lib.sh)
#   FILES=500 BIG_MIB=512 bench/cluster.sh
#
# s3drive talks to node 1's S3 endpoint; node 3 is killed while `cp -r` of a tree (FILES files of
# mixed sizes and one BIG_MIB file) is writing into the mount (`cp -a`). Then, with node 3 down:
# `diff -r` of the copy, `rsync -a` of the tree again (must copy nothing), a `cp -r`, `mv` of a
# directory (server-side copies), `rm -r`. Node 3 comes back; after a remount everything is
# compared again, and against a listing by another client. Prints what each step did and
# s3drive's retries; exits non-zero if anything failed or differs.
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${FILES:-300}
BIG_MIB=${BIG_MIB:-256}
port=${BENCH_PORT:-8937}

command -v garage >/dev/null || { echo "needs garage on PATH (see bench/lib.sh)" >&2; exit 1; }
work=$(mktemp -d /tmp/s3drive-cluster.XXXXXX)
mnt=$work/mnt
mkdir -p "$mnt"
free_mib=$(df -Pm "$work" | awk 'NR==2 {print $4}')
need=$(( (BIG_MIB + FILES * 2) * 5 + 1024 ))
[ "$free_mib" -ge "$need" ] || { echo "need $need MiB free in $work, have $free_mib" >&2; rm -rf "$work"; exit 1; }
cargo build --release -q
unset AWS_CA_BUNDLE AWS_PROFILE
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=GK0123456789abcdef01234567 AWS_SECRET_ACCESS_KEY=$(printf '%064d' 7)
ep=http://127.0.0.1:$port
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
declare -A pid
daemon=
failed=0

cleanup() {
  if grep -q " $mnt " /proc/mounts; then fusermount3 -u "$mnt" || true; fi
  if [ -n "$daemon" ]; then wait "$daemon" 2>/dev/null || true; fi
  for n in 1 2 3; do if [ -n "${pid[$n]:-}" ]; then kill "${pid[$n]}" 2>/dev/null || true; fi; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

g() { garage -c "$work/node1/garage.toml" "$@"; }
start_node() { # n
  local n=$1 d=$work/node$1
  if [ ! -f "$d/garage.toml" ]; then
    mkdir -p "$d/meta" "$d/data"
    cat >"$d/garage.toml" <<TOML
metadata_dir = "$d/meta"
data_dir = "$d/data"
db_engine = "lmdb"
replication_factor = 3
consistency_mode = "consistent"
compression_level = "none"
rpc_bind_addr = "127.0.0.1:$((port + 1000 + n * 10))"
rpc_public_addr = "127.0.0.1:$((port + 1000 + n * 10))"
rpc_secret = "$secret"
[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:$((port + (n - 1) * 10))"
[admin]
api_bind_addr = "127.0.0.1:$((port + 1001 + n * 10))"
TOML
  fi
  garage -c "$d/garage.toml" server >>"$work/node$n.log" 2>&1 &
  pid[$n]=$!
  for _ in $(seq 100); do garage -c "$d/garage.toml" status >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "node $n did not start" >&2; exit 1
}
step() { echo "== $*" >&2; }
check() { # description command...: runs it, records a failure
  local s; s=$(date +%s.%N)
  if "${@:2}" >"$work/out" 2>&1; then
    printf '%-60s ok (%.1f s)\n' "$1" "$(echo "$(date +%s.%N) - $s" | bc -l)"
  else
    printf '%-60s FAILED\n' "$1"; sed 's/^/    /' "$work/out" | head -20; failed=1
  fi
}

step "starting 3 Garage nodes"
for n in 1 2 3; do start_node "$n"; done
for n in 2 3; do
  id=$(garage -c "$work/node$n/garage.toml" node id -q 2>/dev/null)
  g node connect "$id" >/dev/null
done
for n in 1 2 3; do
  id=$(garage -c "$work/node$n/garage.toml" node id -q 2>/dev/null | cut -d@ -f1)
  g layout assign -z "dc$n" -c 10G "$id" >/dev/null
done
g layout apply --version 1 >/dev/null
g key import --yes -n bench "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >/dev/null
g bucket create data >/dev/null
g bucket allow --read --write --owner data --key bench >/dev/null
server_name="Garage $(garage --version 2>/dev/null | awk '{sub(/^cargo:/, "", $2); print $2}')"

step "preparing $FILES files and one of $BIG_MIB MiB"
python3 - "$work/src" "$FILES" <<'PY'
import os, random, sys
d, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(11)
sizes = [0, 1, 1 << 10, 16 << 10, 256 << 10, 1 << 20, 5 << 20]
for i in range(n):
    sub = f"{d}/d{i % 10}"
    os.makedirs(sub, exist_ok=True)
    with open(f"{sub}/f{i:04d}", "wb") as f:
        f.write(os.urandom(rng.choice(sizes)))
PY
head -c $((BIG_MIB << 20)) /dev/urandom >"$work/src/big"

mount_s3drive() {
  ./target/release/s3drive --foreground --endpoint-url "$ep" --force-path-style --cache-dir "$work/cache" \
    --metadata-ttl 2 data "$mnt" 2>>"$work/s3drive.log" &
  daemon=$!
  for _ in $(seq 300); do grep -q " $mnt " /proc/mounts && return 0; sleep 0.05; done
  echo "s3drive did not mount" >&2; exit 1
}
unmount_s3drive() { fusermount3 -u "$mnt"; wait "$daemon" || failed=1; daemon=; }

mount_s3drive
step "cp -a into the mount; node 3 is killed 2 s in"
s=$(date +%s.%N)
( cp -a "$work/src/." "$mnt/a/" ) & cp_pid=$!
sleep 2
kill -9 "${pid[3]}"; wait "${pid[3]}" 2>/dev/null || true; pid[3]=
echo "node 3 killed at $(echo "$(date +%s.%N) - $s" | bc -l | cut -c1-4) s" >&2
if wait "$cp_pid"; then
  printf '%-60s ok (%.1f s)\n' "cp -a of the tree while node 3 died" "$(echo "$(date +%s.%N) - $s" | bc -l)"
else
  printf '%-60s FAILED\n' "cp -a of the tree while node 3 died"; failed=1
fi
check "diff -r of the copy (node 3 down)" diff -r "$work/src" "$mnt/a"
check "rsync -a again copies nothing (node 3 down)" sh -c "rsync -a --stats '$work/src/' '$mnt/a/' | grep -q 'files transferred: 0'"
check "cp -r again into another folder (node 3 down)" cp -r "$work/src/." "$mnt/b/"
check "mv of a folder: server-side copies (node 3 down)" mv "$mnt/b" "$mnt/c"
check "diff -r of the moved folder (node 3 down)" diff -r "$work/src" "$mnt/c"
check "rm -r of it (node 3 down)" rm -r "$mnt/c"
echo "s3drive status with node 3 down:"
./target/release/s3drive status "$mnt" | grep -E "^requests|retries|^recent errors" | sed 's/^/  /'
unmount_s3drive

step "node 3 back; remount"
start_node 3
mount_s3drive
check "diff -r after the remount (all nodes up)" diff -r "$work/src" "$mnt/a"
check "nothing left of the removed folder" sh -c "[ ! -e '$mnt/c' ] && [ ! -e '$mnt/b' ]"
want=$(find "$work/src" -type f | wc -l)
check "another client lists every object ($want)" sh -c "[ \"\$(env -u AWS_CA_BUNDLE aws --endpoint-url '$ep' s3 ls --recursive s3://data/a/ | grep -vc '/\$')\" -eq $want ]"
unmount_s3drive
echo
echo "$server_name, 3 nodes, replication factor 3, consistent mode; $FILES files + ${BIG_MIB} MiB; s3drive $(git rev-parse --short HEAD)."
if [ "$failed" = 0 ]; then echo "RESULT: nothing failed, nothing lost"; else echo "RESULT: FAILURES above"; exit 1; fi
