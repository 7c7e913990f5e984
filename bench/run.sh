#!/usr/bin/env bash
# s3drive against the tools users would pick instead, on one local server in one run:
# rclone mount and s3fs-fuse (Debian's packages) and a direct client (aws CLI, no FUSE).
# Prints one markdown table: median seconds (min-max) of RUNS runs, throughput, S3 requests the
# server saw (s3s-fs's request log), the daemon's peak RSS, and each tool's time ratio to s3drive.
#
#   bench/run.sh            sizes below; about 10 minutes on a 2-core machine
#   RUNS=5 READ_MIB=512 TOOLS="s3drive rclone" bench/run.sh
#
# Workloads: (1) sequential read of a READ_MIB object, cold (fresh mount) and warm (again);
# (2) sequential write of a WRITE_MIB file until the object is in S3; (3) `ls -l` of LS_N
# objects, `find` over TREE_DIRS folders of TREE_FILES objects; (4) `cp -r` of SMALL_N 4 KiB
# files until all are in S3, `rm -r` of them until all are gone from S3; (5) `rsync -a` of a
# MIXED_MIB tree of mixed sizes, then again; (6) PAR_N parallel readers of PAR_MIB objects.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
READ_MIB=${READ_MIB:-1024}
WRITE_MIB=${WRITE_MIB:-1024}
LS_N=${LS_N:-10000}
TREE_DIRS=${TREE_DIRS:-500}
TREE_FILES=${TREE_FILES:-10}
SMALL_N=${SMALL_N:-1000}
MIXED_MIB=${MIXED_MIB:-200}
PAR_N=${PAR_N:-8}
PAR_MIB=${PAR_MIB:-128}
TOOLS=${TOOLS:-"s3drive rclone s3fs direct"}
port=${BENCH_PORT:-8917}
size_mib=$READ_MIB

# shellcheck source=bench/lib.sh
source bench/lib.sh
export RUST_LOG=s3s::ops=debug   # one "resolved route, op: X" line per request
bench_setup "$((READ_MIB + WRITE_MIB * 3 + PAR_N * PAR_MIB + MIXED_MIB * 6 + 2048))"
data=$work/data/bench
log=$work/s3s.log

notes=()
for t in rclone s3fs; do
  if [[ " $TOOLS " == *" $t "* ]] && ! command -v "$t" >/dev/null; then
    echo "installing $t (Debian package)" >&2
    if ! { apt-get install -y -q "$t" >/dev/null 2>&1 || sudo apt-get install -y -q "$t" >/dev/null 2>&1; }; then
      notes+=("$t: not installable here, skipped")
      TOOLS=${TOOLS//$t/}
    fi
  fi
done

# ----- data, written straight into s3s-fs's directory -----
echo "preparing data" >&2
mkdir -p "$data/read" "$data/par" "$data/ls" "$data/tree" "$work/small" "$work/mixed"
head -c $((READ_MIB << 20)) /dev/urandom >"$data/read/big"
head -c $((WRITE_MIB << 20)) /dev/urandom >"$work/write.src"
for i in $(seq "$PAR_N"); do head -c $((PAR_MIB << 20)) /dev/urandom >"$data/par/p$i"; done
python3 - "$data" "$work" "$LS_N" "$TREE_DIRS" "$TREE_FILES" "$SMALL_N" "$MIXED_MIB" <<'PY'
import os, random, sys
data, work, ls_n, dirs, files, small_n, mixed_mib = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
for i in range(ls_n):
    open(f"{data}/ls/f{i:06d}", "wb").write(b"x" * (i % 100))
for d in range(dirs):
    os.makedirs(f"{data}/tree/d{d:04d}", exist_ok=True)
    for f in range(files):
        open(f"{data}/tree/d{d:04d}/f{f:03d}", "wb").write(b"t")
blob = os.urandom(4096)
for i in range(small_n):
    open(f"{work}/small/s{i:05d}", "wb").write(blob)
rng, left, n = random.Random(7), mixed_mib << 20, 0
sizes = [1 << 10, 16 << 10, 256 << 10, 1 << 20, 8 << 20, 24 << 20]
while left > 0:
    s = min(rng.choice(sizes), left)
    os.makedirs(f"{work}/mixed/d{n % 20}", exist_ok=True)
    with open(f"{work}/mixed/d{n % 20}/m{n:05d}", "wb") as fh:
        fh.write(os.urandom(s))
    left -= s
    n += 1
PY
sync

# ----- helpers -----
s3get() { curl -sf --aws-sigv4 aws:amz:us-east-1:s3 --user bench:benchsecret -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$ep/bench$1"; }
# Keys under a prefix (first 1,000 is all the workloads need).
count_keys() { s3get "/?list-type=2&prefix=${1//\//%2F}" | grep -o '<Key>' | wc -l; }
wait_keys() { until [ "$(count_keys "$1")" -eq "$2" ]; do sleep 0.02; done; }
object_size() { curl -sfI --aws-sigv4 aws:amz:us-east-1:s3 --user bench:benchsecret -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$ep/bench/$1" | awk 'tolower($1)=="content-length:" {print $2+0}'; }
wait_size() { until [ "$(object_size "$1" || echo 0)" = "$2" ]; do sleep 0.02; done; }
requests() { grep -c 'resolved route, op:' "$log" || true; }

daemon=; rss_peak=0
mount_tool() { # tool
  case $1 in
    s3drive) ./target/release/s3drive --foreground --endpoint-url "$ep" --force-path-style --cache-dir "$work/cache-s3drive" bench "$mnt" 2>>"$work/s3drive.log" & ;;
    rclone)
      env -u AWS_CA_BUNDLE RCLONE_CONFIG_B_TYPE=s3 RCLONE_CONFIG_B_PROVIDER=Other RCLONE_CONFIG_B_ENV_AUTH=false \
        RCLONE_CONFIG_B_ACCESS_KEY_ID=bench RCLONE_CONFIG_B_SECRET_ACCESS_KEY=benchsecret RCLONE_CONFIG_B_ENDPOINT="$ep" \
        RCLONE_CONFIG_B_REGION=us-east-1 rclone mount b:bench "$mnt" --vfs-cache-mode writes --vfs-write-back 0s \
        --cache-dir "$work/cache-rclone" 2>>"$work/rclone.log" & ;;
    s3fs)
      echo "bench:benchsecret" >"$work/s3fs.passwd"; chmod 600 "$work/s3fs.passwd"
      s3fs bench "$mnt" -f -o url="$ep" -o use_path_request_style -o passwd_file="$work/s3fs.passwd" \
        -o endpoint=us-east-1 -o sigv4 2>>"$work/s3fs.log" & ;;
  esac
  daemon=$!
  for _ in $(seq 300); do grep -q " $mnt " /proc/mounts && return 0; sleep 0.05; done
  echo "$1 did not mount" >&2; exit 1
}
unmount_tool() {
  local hwm
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$daemon/status" 2>/dev/null || echo 0)
  eval "rss_$tool=\$(( \${rss_$tool:-0} > hwm ? \${rss_$tool:-0} : hwm ))"
  fusermount3 -u "$mnt" 2>/dev/null || { sleep 1; fusermount3 -u "$mnt"; }
  wait "$daemon" 2>/dev/null || true; daemon=
}

# record WORKLOAD TOOL SECONDS REQUESTS
declare -A times reqs
record() { times[$1,$2]+="$3 "; reqs[$1,$2]+="$4 "; }

# run_case WORKLOAD TOOL MIB BODY... : BODY runs with $p set to a per-run path suffix; fresh mount.
run_case() {
  local w=$1 t=$2 body=$3 r0 s
  for run in $(seq "$RUNS"); do
    p="$t-$run"
    if [ "$t" != direct ]; then mount_tool "$t"; fi
    r0=$(requests); s=$(date +%s.%N)
    eval "$body"
    T=$(echo "$(date +%s.%N) - $s" | bc -l)
    record "$w" "$t" "$T" "$(( $(requests) - r0 ))"
    if [ -n "${after:-}" ]; then eval "$after"; fi
    if [ "$t" != direct ]; then unmount_tool; fi
  done
}

aws_() { env -u AWS_CA_BUNDLE aws --endpoint-url "$ep" "$@"; }

for tool in $TOOLS; do
  echo "== $tool" >&2
  if [ "$tool" = direct ]; then
    R='aws_ s3 cp --quiet s3://bench/read/big - >/dev/null'
    after=; run_case "1. read ${READ_MIB} MiB, cold" direct "$R"
    run_case "1. read ${READ_MIB} MiB, warm" direct "$R"
    after='rm -f "$data/w/$p"'
    run_case "2. write ${WRITE_MIB} MiB" direct 'aws_ s3 cp --quiet "$work/write.src" "s3://bench/w/$p"'
    after=
    run_case "3. ls -l ${LS_N} objects" direct 'aws_ s3 ls s3://bench/ls/ >/dev/null'
    run_case "3. find $((TREE_DIRS * TREE_FILES)) objects" direct 'aws_ s3 ls --recursive s3://bench/tree/ >/dev/null'
    after='aws_ s3 rm --quiet --recursive "s3://bench/small-$p/" >/dev/null'
    run_case "4. cp -r ${SMALL_N} x 4 KiB" direct 'aws_ s3 cp --quiet --recursive "$work/small" "s3://bench/small-$p/"'
    after=
    run_case "4. rm -r ${SMALL_N} files" direct 'aws_ s3 cp --quiet --recursive "$work/small" "s3://bench/rm-$p/" >/dev/null; r0=$(requests); s=$(date +%s.%N); aws_ s3 rm --quiet --recursive "s3://bench/rm-$p/"'
    run_case "5. rsync -a ${MIXED_MIB} MiB" direct 'aws_ s3 sync --quiet "$work/mixed" "s3://bench/mixed-$p/"'
    run_case "5. rsync -a again" direct 'aws_ s3 sync --quiet "$work/mixed" "s3://bench/mixed-$p/"'
    run_case "6. ${PAR_N} parallel readers x ${PAR_MIB} MiB" direct 'for i in $(seq "$PAR_N"); do aws_ s3 cp --quiet "s3://bench/par/p$i" - >/dev/null & done; wait'
    continue
  fi
  # 1. cold and warm read in one mount
  for run in $(seq "$RUNS"); do
    mount_tool "$tool"
    for kind in cold warm; do
      r0=$(requests); s=$(date +%s.%N)
      cat "$mnt/read/big" >/dev/null
      record "1. read ${READ_MIB} MiB, $kind" "$tool" "$(echo "$(date +%s.%N) - $s" | bc -l)" "$(( $(requests) - r0 ))"
    done
    unmount_tool
  done
  after='rm -f "$data/w/$p"'
  run_case "2. write ${WRITE_MIB} MiB" "$tool" 'mkdir -p "$mnt/w"; cp "$work/write.src" "$mnt/w/$p"; wait_size "w/$p" $((WRITE_MIB << 20))'
  after=
  run_case "3. ls -l ${LS_N} objects" "$tool" 'ls -l "$mnt/ls" >/dev/null'
  run_case "3. find $((TREE_DIRS * TREE_FILES)) objects" "$tool" 'find "$mnt/tree" >/dev/null'
  run_case "4. cp -r ${SMALL_N} x 4 KiB" "$tool" 'cp -r "$work/small" "$mnt/small-$p"; wait_keys "small-$p/" "$SMALL_N"'
  run_case "4. rm -r ${SMALL_N} files" "$tool" 'rm -r "$mnt/small-$p"; wait_keys "small-$p/" 0'
  run_case "5. rsync -a ${MIXED_MIB} MiB" "$tool" 'rsync -a "$work/mixed/" "$mnt/mixed-$p/"; sync -f "$mnt" 2>/dev/null || true'
  for run in $(seq "$RUNS"); do
    p="$tool-$run"; mount_tool "$tool"
    r0=$(requests); s=$(date +%s.%N)
    rsync -a "$work/mixed/" "$mnt/mixed-$p/"
    record "5. rsync -a again" "$tool" "$(echo "$(date +%s.%N) - $s" | bc -l)" "$(( $(requests) - r0 ))"
    unmount_tool
  done
  run_case "6. ${PAR_N} parallel readers x ${PAR_MIB} MiB" "$tool" 'for i in $(seq "$PAR_N"); do cat "$mnt/par/p$i" >/dev/null & done; wait'
done

# ----- the table -----
mib_of() { case $1 in "1."*) echo "$READ_MIB" ;; "2."*) echo "$WRITE_MIB" ;; "5. rsync -a $MIXED_MIB"*) echo "$MIXED_MIB" ;; "6."*) echo $((PAR_N * PAR_MIB)) ;; *) echo "" ;; esac; }
workloads=$(printf '%s\n' "${!times[@]}" | cut -d, -f1 | sort -u)
echo
echo "s3drive $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores, $(uname -r), s3s-fs 0.14.1 on 127.0.0.1; median of $RUNS runs (min-max); requests as s3s-fs logged them."
echo
echo "| workload | tool | seconds | MiB/s | requests | time vs s3drive |"
echo "|---|---|---|---|---|---|"
while IFS= read -r w; do
  base=$(printf '%s\n' ${times[$w,s3drive]:-} | median)
  for t in $TOOLS; do
    [ -n "${times[$w,$t]:-}" ] || continue
    med=$(printf '%s\n' ${times[$w,$t]} | median)
    rq=$(printf '%s\n' ${reqs[$w,$t]} | median)
    mib=$(mib_of "$w"); thr=; [ -n "$mib" ] && thr=$(echo "scale=1; $mib / $med" | bc -l)
    ratio=; [ -n "$base" ] && ratio="$(echo "scale=2; $med / $base" | bc -l)x"
    printf '| %s | %s | %.2f (%s) | %s | %s | %s |\n' "$w" "$t" "$med" "$(range ${times[$w,$t]})" "$thr" "$rq" "$ratio"
  done
done <<<"$workloads"
echo
printf 'Daemon peak RSS:'; for t in $TOOLS; do [ "$t" = direct ] && continue; v="rss_$t"; printf ' %s %d MiB;' "$t" $(( ${!v:-0} / 1024 )); done; echo
for n in "${notes[@]}"; do echo "Note: $n"; done
