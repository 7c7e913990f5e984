#!/usr/bin/env bash
# Buckets of millions of keys: `find` and `du -s` over a tree of SCALE_DIRS folders of
# SCALE_FILES objects (1,000 x 1,000 by default: a million keys), and `ls -l` of one folder of
# FLAT_N objects (100,000), on s3s-fs, beside the aws CLI (`aws s3 ls --recursive`, the listing
# API's own speed) and rclone mount where it finishes within SCALE_TIMEOUT. For each: seconds,
# S3 requests (s3s-fs's log), the daemon's peak RSS, and its RSS a minute after the walk (with
# the inodes the kernel then holds from s3drive, which --inode-budget bounds).
#
#   bench/scale.sh                                   about 30-60 minutes on 2 cores, 5 GiB of disk
#   SCALE_DIRS=100 SCALE_FILES=1000 FLAT_N=20000 TOOLS=s3drive bench/scale.sh     a quick look
#   WORKLOADS="find ls" TOOLS="s3drive rclone" bench/scale.sh                         some rows only
#
# s3s-fs reads a whole directory (and every file's metadata) for each listing page, so a page
# of a 100,000-file folder takes it about 40 s, and a flat listing of the tree (the aws CLI's
# `ls --recursive`) reads the whole tree per page: those rows measure s3s-fs, and FLAT_N=5000
# with TOOLS without direct keeps the run under half an hour. bench/flat.sh measures the
# 100,000-name folder on Garage instead.
#
# SERVER=garage runs the same on Garage (one node, see bench/lib.sh), a real S3 server whose
# listings are paged like S3's, so the aws CLI's flat listing of the tree is measured there too:
# `SERVER=garage WORKLOADS="find du" FLAT_N=0 TOOLS="s3drive s3drive-listing direct"
# bench/scale.sh` (filling a million objects through the S3 API takes most of an hour here).
# Requests are then s3drive's own count (`s3drive status`); Garage keeps no request log.
#
# On s3s-fs the objects are 1-byte files written straight into its data directory. s3drive runs
# twice: as mounted by default (modes, owners and mtimes from each object's metadata: `du`
# stats every file, one HeadObject per object version the first time a host sees it, many at
# once), and with --metadata-from listing (listings alone). `ls -l` of the folder runs twice in
# one mount: cold, and again within the TTL (nothing should be sent). s3drive mounts with a 30 s
# TTL (the default is 10 s; rclone's directory cache is 5 minutes), so that a second `ls -l` of a
# folder whose first took longer than 10 s still falls within it.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE_DIRS=${SCALE_DIRS:-1000}
SCALE_FILES=${SCALE_FILES:-1000}
FLAT_N=${FLAT_N:-100000}
SCALE_TIMEOUT=${SCALE_TIMEOUT:-1800}
SETTLE=${SETTLE:-60}
TOOLS=${TOOLS:-"s3drive s3drive-listing direct rclone"}
WORKLOADS=${WORKLOADS:-"find du ls"}   # which rows to run
want() { [[ " $WORKLOADS " == *" $1 "* ]]; }
port=${BENCH_PORT:-8919}
size_mib=0
keys=$((SCALE_DIRS * SCALE_FILES))

# shellcheck source=bench/lib.sh
source bench/lib.sh
export RUST_LOG=s3s::ops=debug
# About 4 KiB of disk per object, plus room.
bench_setup "$(( (keys + FLAT_N) * 5 / 1024 + 1024 ))"
d=$work/data
log=$work/s3s.log
aws_="env -u AWS_CA_BUNDLE aws --endpoint-url $ep"
# Requests so far: s3s-fs's log, or on Garage the mounted s3drive's own count ("-": unknown).
requests() {
  if [ "$SERVER" = s3s-fs ]; then grep -c 'resolved route, op:' "$log" || true
  elif [[ ${tool:-} == s3drive* ]] && [ -n "${daemon:-}" ]; then
    ./target/release/s3drive status "$mnt" 2>/dev/null | awk '/^requests:/ {print $2}'
  else echo -; fi
}

if [ "$SERVER" = garage ]; then
  make_bucket scale; make_bucket flat
  echo "putting $keys + $FLAT_N objects through the S3 API (4 processes x 32 at a time)" >&2
  python3 - "$ep" "$SCALE_DIRS" "$SCALE_FILES" "$FLAT_N" <<'PY'
import sys, botocore.config, botocore.session
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import Pool
ep, dirs, files, flat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
keys = [("scale", f"t/d{i:05}/f{j:05}") for i in range(dirs) for j in range(files)]
keys += [("flat", f"many/f{j:06}") for j in range(flat)]
def put_share(share):
    c = botocore.session.get_session().create_client("s3", endpoint_url=ep, region_name="us-east-1",
        config=botocore.config.Config(max_pool_connections=32, read_timeout=15, retries={"max_attempts": 10}))
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda bk: c.put_object(Bucket=bk[0], Key=bk[1], Body=b"x"), share))
with Pool(4) as p:
    p.map(put_share, [keys[i::4] for i in range(4)])
PY
else
echo "writing $keys + $FLAT_N objects into $d" >&2
python3 - "$d" "$SCALE_DIRS" "$SCALE_FILES" "$FLAT_N" <<'PY'
import os, sys
d, dirs, files, flat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for b in ("scale", "flat"):
    os.makedirs(f"{d}/{b}", exist_ok=True)
for i in range(dirs):
    p = f"{d}/scale/t/d{i:05}"
    os.makedirs(p, exist_ok=True)
    for j in range(files):
        with open(f"{p}/f{j:05}", "wb") as f:
            f.write(b"x")
os.makedirs(f"{d}/flat/many", exist_ok=True)
for j in range(flat):
    with open(f"{d}/flat/many/f{j:06}", "wb") as f:
        f.write(b"x")
PY
fi

rows=()
row() { rows+=("| $1 | $2 | $3 | $4 | $5 | $6 | $7 |"); echo "  $1 | $2: $3 s, $4 requests" >&2; }
# Inodes the kernel holds from s3drive ("-" for other tools): the inode budget's count.
inodes() {
  if [[ ${tool:-} == s3drive* ]] && [ -n "${daemon:-}" ]; then
    ./target/release/s3drive status "$mnt" 2>/dev/null | awk '/^inodes the kernel holds:/ {print $5}'
  else echo -; fi
}
rss_of() { awk -v k="$2" '$1 == k":" {print int($2 / 1024)}' "/proc/$1/status" 2>/dev/null || echo "-"; }

daemon=
mount_tool() { # tool bucket
  case $1 in
    s3drive) ./target/release/s3drive --foreground --endpoint-url "$ep" --force-path-style --metadata-ttl 30 \
      --cache-dir "$work/cache-$RANDOM" "$2" "$mnt" 2>>"$work/s3drive.log" & ;;
    s3drive-listing) ./target/release/s3drive --foreground --endpoint-url "$ep" --force-path-style --metadata-ttl 30 \
      --metadata-from listing --cache-dir "$work/cache-$RANDOM" "$2" "$mnt" 2>>"$work/s3drive.log" & ;;
    rclone)
      env -u AWS_CA_BUNDLE RCLONE_CONFIG_B_TYPE=s3 RCLONE_CONFIG_B_PROVIDER=Other RCLONE_CONFIG_B_ENV_AUTH=false \
        RCLONE_CONFIG_B_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" RCLONE_CONFIG_B_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
        RCLONE_CONFIG_B_ENDPOINT="$ep" RCLONE_CONFIG_B_REGION=us-east-1 rclone mount "b:$2" "$mnt" \
        --cache-dir "$work/cache-rclone" >>"$work/rclone.log" 2>&1 & ;;
  esac
  daemon=$!
  for _ in $(seq 300); do grep -q " $mnt " /proc/mounts && return 0; sleep 0.05; done
  echo "$1 did not mount" >&2; exit 1
}
unmount_tool() {
  for _ in $(seq 50); do fusermount3 -u "$mnt" 2>/dev/null && break; sleep 0.2; done
  wait "$daemon" 2>/dev/null || true; daemon=
}
# measure TOOL WHAT CMD [SETTLE]: one timed command, the daemon's peak RSS, and its RSS SETTLE
# seconds later ("-" with 0).
measure() {
  local tool=$1 what=$2 cmd=$3 settle=${4:-$SETTLE} r0 s t peak later
  r0=$(requests); s=$(date +%s.%N)
  local rc=0
  timeout "$SCALE_TIMEOUT" bash -c "$cmd" >/dev/null 2>>"$work/errors.log" || rc=$?
  case $rc in
    0) t=$(printf '%.1f' "$(echo "$(date +%s.%N) - $s" | bc -l)") ;;
    124) t="> $SCALE_TIMEOUT (stopped)" ;;
    *) t="failed ($rc)"; tail -3 "$work/errors.log" >&2 ;;
  esac
  local r1 n=-; r1=$(requests)
  [ "$r0" != - ] && [ "$r1" != - ] && n=$((r1 - r0))
  local held=-
  if [ -n "$daemon" ]; then
    peak=$(rss_of "$daemon" VmHWM); later=-
    if [ "$settle" -gt 0 ]; then sleep "$settle"; later=$(rss_of "$daemon" VmRSS); held=$(inodes); fi
  else
    peak=-; later=-
  fi
  row "$what" "$tool" "$t" "$n" "$peak" "$later" "$held"
}

for tool in $TOOLS; do
  echo "== $tool" >&2
  if [ "$tool" = direct ]; then
    want find && measure direct "find, $keys objects in $SCALE_DIRS folders" "$aws_ s3 ls --recursive s3://scale/"
    want du && measure direct "du -s, the same tree" "$aws_ s3 ls --recursive --summarize s3://scale/"
    want ls && measure direct "ls -l, one folder of $FLAT_N" "$aws_ s3 ls s3://flat/many/"
    continue
  fi
  if want find; then
    mount_tool "$tool" scale
    measure "$tool" "find, $keys objects in $SCALE_DIRS folders" "find '$mnt'"
    unmount_tool
  fi
  if want du; then
    mount_tool "$tool" scale
    measure "$tool" "du -s, the same tree" "du -s '$mnt'"
    unmount_tool
  fi
  if want ls; then
    mount_tool "$tool" flat
    measure "$tool" "ls -l, one folder of $FLAT_N" "ls -l '$mnt/many'" 0
    measure "$tool" "ls -l again, within the TTL" "ls -l '$mnt/many'"
    unmount_tool
  fi
done

echo
echo "bench/scale.sh on $server_name, $(nproc) cores, $(date -u +%Y-%m-%d); $keys keys in $SCALE_DIRS folders, one folder of $FLAT_N"
echo
echo "| workload | tool | seconds | requests | peak RSS MiB | RSS ${SETTLE}s later MiB | kernel inodes then |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
