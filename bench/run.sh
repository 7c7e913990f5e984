#!/usr/bin/env bash
# s3drive against the tools users would pick instead, on one local server in one run:
# rclone mount and s3fs-fuse (Debian's packages) and a direct client (aws CLI, no FUSE).
# Prints one markdown table: median seconds (min-max) of RUNS runs, throughput, S3 requests the
# server saw (s3s-fs's request log), each tool's time ratio to s3drive, and daemon peak RSS.
#
#   bench/run.sh            default sizes, 3 runs; about 25 minutes on a 2-core machine
#   RUNS=5 READ_MIB=512 TOOLS="s3drive rclone" bench/run.sh
#   ONLY="1 6" TOOLS=s3drive RUNS=1 bench/run.sh     only workloads 1 and 6, only s3drive
#
# Workloads: (1) sequential read of a READ_MIB object, cold (fresh mount) and warm (again);
# (2) sequential write of a WRITE_MIB file until the object is in S3; (3) `ls -l` of a folder
# of each size in LS_NS (s3s-fs reads its whole directory for every page, so time grows with
# the square of the size: compare tools within a row), `find` over TREE_DIRS folders of TREE_FILES objects; (4) `cp -r` of SMALL_N 4 KiB
# files until all are in S3, `rm` of them until S3 has none; (5) `rsync -a` of a MIXED_MIB set
# of files of mixed sizes, then again (a new mount: for s3drive, with its metadata index from the
# first run); (6) PAR_N parallel readers of PAR_MIB objects; (7) `ls -l` of META_N objects that
# another client uploaded with s3fs-style metadata (mode 0600, an old mtime, owner 42:43), cold
# (s3drive with an empty cache directory: another host) and warm (a remount, s3drive with the
# index the cold run filled). Each tool's `ls -l` output is checked for the stored mode;
# (8) read again: AGAIN_N objects of 1 MiB and one of READ_MIB, each read twice with a local data
# cache (s3drive --data-cache, rclone --vfs-cache-mode full, s3fs use_cache), each pass by new
# processes after dropping the page cache (needs root; each pass's GetObjects are in the notes).
#
# Writes start with no writeback pending (`sync` before the clock), so what earlier workloads
# left dirty in the page cache is not flushed during whichever tool's write comes next.
#
# Each workload has its own bucket and works at the bucket's root: s3s-fs answers HeadObject
# of a "folder" with 500, which s3fs retries for minutes, so only the find row needs folders.
#
# SERVER=garage runs the same on Garage instead (see bench/lib.sh), a real S3 server whose
# CompleteMultipartUpload is cheap; it has no request log, so the requests column stays empty.
#
# DELAY_MS=10 puts bench/delay_proxy.py between the tools and the server: every answer arrives
# that much later, as from an S3 region away rather than on loopback, where the server's
# latency (not the client's CPU) sets the pace (`ONLY=7 DELAY_MS=10 SERVER=garage bench/run.sh`).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
READ_MIB=${READ_MIB:-1024}
WRITE_MIB=${WRITE_MIB:-1024}
LS_NS=${LS_NS-"5000 10000"}   # empty: no ls rows (and nothing filled for them)
TREE_DIRS=${TREE_DIRS:-500}
TREE_FILES=${TREE_FILES:-10}
SMALL_N=${SMALL_N:-1000}
MIXED_MIB=${MIXED_MIB:-200}
PAR_N=${PAR_N:-8}
PAR_MIB=${PAR_MIB:-128}
AGAIN_N=${AGAIN_N:-1000}
META_N=${META_N:-5000}
TOOLS=${TOOLS:-"s3drive rclone s3fs direct"}
ONLY=${ONLY:-"1 2 3 4 5 6 7 8"}   # which workloads to run, by number
WAIT_MAX=${WAIT_MAX:-120}
port=${BENCH_PORT:-8917}
size_mib=$READ_MIB

# shellcheck source=bench/lib.sh
source bench/lib.sh
export RUST_LOG=s3s::ops=debug   # s3s-fs logs one "resolved route, op: X" line per request
bench_setup "$((READ_MIB * 3 + WRITE_MIB * 2 + PAR_N * PAR_MIB + MIXED_MIB * 8 + AGAIN_N * 2 + 2048))"
d=$work/data
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

# ----- data, written straight into s3s-fs's directory (a directory per bucket) -----
echo "preparing data" >&2
# Listed trees are written as files: straight into s3s-fs's directory, or synced into Garage.
fill=$d; [ "$SERVER" = s3s-fs ] || fill=$work/fill
make_bucket read; make_bucket par; make_bucket again
mkdir -p "$fill/tree" "$work/small" "$work/mixed"
# Large objects go in through PutObject: s3s-fs keeps their MD5 then, instead of hashing the
# whole file again for every ranged GET.
put_random() { head -c $(($2 << 20)) /dev/urandom >"$work/tmp.obj"; curl_s3 -T "$work/tmp.obj" "$ep/$1" >/dev/null; rm -f "$work/tmp.obj"; }
put_random read/big "$READ_MIB"
if [[ " $ONLY " == *" 8 "* ]]; then
  put_random again/big "$READ_MIB"
  mkdir -p "$fill/again"
  for i in $(seq -w "$AGAIN_N"); do head -c $((1 << 20)) /dev/urandom >"$fill/again/f$i"; done
fi
for i in $(seq "$PAR_N"); do put_random "par/p$i" "$PAR_MIB"; done
head -c $((WRITE_MIB << 20)) /dev/urandom >"$work/write.src"
python3 - "$fill" "$work" "$LS_NS" "$TREE_DIRS" "$TREE_FILES" "$SMALL_N" "$MIXED_MIB" <<'PY'
import os, random, sys
d, work, ls_ns, (dirs, files, small_n, mixed_mib) = sys.argv[1], sys.argv[2], sys.argv[3], map(int, sys.argv[4:])
for n in map(int, ls_ns.split()):
    os.makedirs(f"{d}/list-{n}", exist_ok=True)
    for i in range(n):
        open(f"{d}/list-{n}/f{i:06d}", "wb").write(b"x" * (i % 100))
for k in range(dirs):
    os.makedirs(f"{d}/tree/d{k:04d}", exist_ok=True)
    for f in range(files):
        open(f"{d}/tree/d{k:04d}/f{f:03d}", "wb").write(b"t")
blob = os.urandom(4096)
for i in range(small_n):
    open(f"{work}/small/s{i:05d}", "wb").write(blob)
rng, left, n = random.Random(7), mixed_mib << 20, 0
sizes = [1 << 10, 16 << 10, 256 << 10, 1 << 20, 8 << 20, 24 << 20]
while left > 0:
    s = min(rng.choice(sizes), left)
    with open(f"{work}/mixed/m{n:05d}", "wb") as fh:
        fh.write(os.urandom(s))
    left -= s
    n += 1
PY
if [ "$SERVER" != s3s-fs ]; then
  for b in "$fill"/*; do make_bucket "$(basename "$b")"; done
  # 16 PutObjects at a time (botocore, which awscli brings); `aws s3 sync` took 10 minutes here.
  python3 - "$fill" "$ep" <<'PY'
import os, sys, botocore.config, botocore.session
from concurrent.futures import ThreadPoolExecutor
fill, ep = sys.argv[1:]
c = botocore.session.get_session().create_client("s3", endpoint_url=ep, region_name="us-east-1",
    config=botocore.config.Config(max_pool_connections=16, read_timeout=15, retries={"max_attempts": 8}))
def put(path):
    bucket, key = os.path.relpath(path, fill).split("/", 1)
    with open(path, "rb") as f:
        c.put_object(Bucket=bucket, Key=key, Body=f.read())
paths = [os.path.join(r, f) for r, _, fs in os.walk(fill) for f in fs]
with ThreadPoolExecutor(16) as pool:
    list(pool.map(put, paths))
PY
  rm -rf "$fill"
fi
if [[ " $ONLY " == *" 7 "* ]]; then
  # Uploaded by "another client" with s3fs's metadata, 16 PutObjects at a time.
  make_bucket meta
  python3 - "$ep" "$META_N" <<'PY'
import sys, botocore.config, botocore.session
from concurrent.futures import ThreadPoolExecutor
ep, n = sys.argv[1], int(sys.argv[2])
c = botocore.session.get_session().create_client("s3", endpoint_url=ep, region_name="us-east-1",
    config=botocore.config.Config(max_pool_connections=16, read_timeout=15, retries={"max_attempts": 8}))
meta = {"mode": "33152", "mtime": "1600000000", "uid": "42", "gid": "43"}
def put(i):
    c.put_object(Bucket="meta", Key=f"m{i:05d}", Body=b"m" * (i % 100), Metadata=meta)
with ThreadPoolExecutor(16) as pool:
    list(pool.map(put, range(n)))
PY
fi
sync
if [ -n "${DELAY_MS:-}" ]; then
  # Filled directly above; from here every tool (and the checks) goes through the delay.
  python3 bench/delay_proxy.py "$((port + 2))" "$port" "$DELAY_MS" 2>>"$work/delay.log" &
  helpers+=($!)
  ep=http://127.0.0.1:$((port + 2))
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$((port + 2))) 2>/dev/null && break; sleep 0.1; done
fi

# ----- helpers -----
count_keys() { curl_s3 "$ep/$1/?list-type=2" | grep -o '<Key>' | wc -l; } # bucket (<= 1000 keys)
object_size() { curl_s3 -I "$ep/$1" | awk 'tolower($1)=="content-length:" {print $2+0}'; }
gave_up() { notes+=("$tool, $w: S3 did not show the result within ${WAIT_MAX}s (timed as ${WAIT_MAX}s)"); }
wait_keys() { local end=$((SECONDS + WAIT_MAX)); until [ "$(count_keys "$1")" -eq "$2" ]; do [ $SECONDS -lt $end ] || { gave_up; return 0; }; sleep 0.02; done; }
wait_size() { local end=$((SECONDS + WAIT_MAX)); until [ "$(object_size "$1" || echo 0)" = "$2" ]; do [ $SECONDS -lt $end ] || { gave_up; return 0; }; sleep 0.02; done; }
gets() { if [ "$SERVER" = s3s-fs ]; then grep -c 'resolved route, op: GetObject' "$log" || true; else echo 0; fi; }
requests() { if [ "$SERVER" = s3s-fs ]; then grep -c 'resolved route, op:' "$log" || true; else echo 0; fi; }
aws_() { env -u AWS_CA_BUNDLE aws --endpoint-url "$ep" "$@"; }

daemon=
mount_tool() { # tool bucket
  case $1 in
    s3drive) ./target/release/s3drive --foreground --endpoint-url "$ep" --force-path-style --cache-dir "$work/cache-s3drive" \
        ${data_cache:+--data-cache "$work/data-cache"} "$2" "$mnt" 2>>"$work/s3drive.log" & ;;
    rclone)
      env -u AWS_CA_BUNDLE RCLONE_CONFIG_B_TYPE=s3 RCLONE_CONFIG_B_PROVIDER=Other RCLONE_CONFIG_B_ENV_AUTH=false \
        RCLONE_CONFIG_B_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" RCLONE_CONFIG_B_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" RCLONE_CONFIG_B_ENDPOINT="$ep" \
        RCLONE_CONFIG_B_REGION=us-east-1 rclone mount "b:$2" "$mnt" --vfs-cache-mode "$([ -n "${data_cache:-}" ] && echo full || echo writes)" --vfs-write-back 0s \
        --cache-dir "$work/cache-rclone" >>"$work/rclone.log" 2>&1 & ;;
    s3fs)
      echo "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" >"$work/s3fs.passwd"; chmod 600 "$work/s3fs.passwd"
      s3fs "$2" "$mnt" -f -o url="$ep" -o use_path_request_style -o passwd_file="$work/s3fs.passwd" \
        -o endpoint=us-east-1 ${data_cache:+-o use_cache="$work/data-cache"} >>"$work/s3fs.log" 2>&1 & ;;
  esac
  daemon=$!
  for _ in $(seq 300); do grep -q " $mnt " /proc/mounts && return 0; sleep 0.05; done
  echo "$1 did not mount" >&2; exit 1
}
unmount_tool() {
  local hwm k
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$daemon/status" 2>/dev/null || echo 0)
  for k in "$@"; do # the workloads this mount served: keep each one's highest peak
    [ "${rss[$k|$tool]:-0}" -ge "$hwm" ] || rss[$k|$tool]=$hwm
  done
  for _ in $(seq 50); do fusermount3 -u "$mnt" 2>/dev/null && break; sleep 0.2; done
  wait "$daemon" 2>/dev/null || true; daemon=
}

# A tool that never answers a request (s3fs retrying s3s-fs's 500s) leaves `find` in an
# uninterruptible wait: end that mount's FUSE connection and its daemon.
abort_mount() {
  mountpoint -q /sys/fs/fuse/connections || mount -t fusectl none /sys/fs/fuse/connections 2>/dev/null || true
  local dev
  dev=$(awk -v m="$mnt" '$5 == m {print $3}' /proc/self/mountinfo | cut -d: -f2)
  if [ -n "$dev" ]; then echo 1 >"/sys/fs/fuse/connections/$dev/abort" 2>/dev/null || true; fi
  if [ -n "$daemon" ]; then kill -9 "$daemon" 2>/dev/null || true; fi
}
declare -A times reqs rss
selected() { [[ " $ONLY " == *" ${1%%.*} "* ]]; }
record() { times[$1|$2]+="$3 "; reqs[$1|$2]+="$4 "; }

# run_case WORKLOAD BUCKET BODY: this round's run of WORKLOAD: a fresh mount of BUCKET (BUCKET
# may use $p, the run's tag), then BODY timed; $pre runs before the clock starts, $post after.
run_case() {
  local bucket r0 s
  w=$1
  selected "$w" || return 0
  p="$tool-$run"; bucket=$(eval echo "$2")
  make_bucket "$bucket"
  if [ -n "${pre:-}" ]; then eval "$pre"; fi
  if [ "$tool" != direct ]; then mount_tool "$tool" "$bucket"; fi
  r0=$(requests); s=$(date +%s.%N)
  eval "$3"
  T=$(echo "$(date +%s.%N) - $s" | bc -l)
  record "$w" "$tool" "$T" "$(( $(requests) - r0 ))"
  if [ "$tool" != direct ]; then unmount_tool "$w"; fi
  if [ -n "${post:-}" ]; then eval "$post"; fi
}

# Rounds: every tool runs every workload once per round, so a machine that slows down or speeds
# up during the run (it is shared) weighs on all tools alike, not on whichever ran last.
for run in $(seq "$RUNS"); do
for tool in $TOOLS; do
  echo "== round $run/$RUNS: $tool" >&2
  pre=; post=
  if [ "$tool" = direct ]; then
    run_case "1. read ${READ_MIB} MiB, cold" read 'aws_ s3 cp --quiet s3://read/big - >/dev/null'
    run_case "1. read ${READ_MIB} MiB, warm" read 'aws_ s3 cp --quiet s3://read/big - >/dev/null'
    pre=sync; post='drop_bucket "wr-$p"'
    run_case "2. write ${WRITE_MIB} MiB" 'wr-$p' 'aws_ s3 cp --quiet "$work/write.src" "s3://wr-$p/file"'
    pre=; post=
    for n in $LS_NS; do run_case "3. ls -l $n objects" "list-$n" 'aws_ s3 ls s3://list-$n/ >/dev/null'; done
    run_case "3. find $((TREE_DIRS * TREE_FILES)) objects" tree 'aws_ s3 ls --recursive s3://tree/ >/dev/null'
    run_case "4. cp -r ${SMALL_N} x 4 KiB" 'sm-$p' 'aws_ s3 cp --quiet --recursive "$work/small" "s3://sm-$p/"'
    run_case "4. rm ${SMALL_N} files" 'sm-$p' 'aws_ s3 rm --quiet --recursive "s3://sm-$p/"'
    run_case "5. rsync -a ${MIXED_MIB} MiB" 'mx-$p' 'aws_ s3 sync --quiet "$work/mixed" "s3://mx-$p/"'
    post='drop_bucket "mx-$p"'
    run_case "5. rsync -a again" 'mx-$p' 'aws_ s3 sync --quiet "$work/mixed" "s3://mx-$p/"'
    post=
    run_case "6. ${PAR_N} parallel readers x ${PAR_MIB} MiB" par 'pids=(); for i in $(seq "$PAR_N"); do aws_ s3 cp --quiet "s3://par/p$i" - >/dev/null & pids+=($!); done; wait "${pids[@]}"'
    # The listing and every object's HeadObject, 16 at a time: what the metadata costs a client.
    for kind in cold warm; do
      run_case "7. ls -l ${META_N} objects with metadata, $kind" meta 'python3 bench/head_all.py "$ep" meta'
    done
    continue
  fi
  # 1. cold, then warm, in one mount
  w="1. read ${READ_MIB} MiB"
  if selected "$w"; then
    mount_tool "$tool" read
    for kind in cold warm; do
      r0=$(requests); s=$(date +%s.%N)
      cat "$mnt/big" >/dev/null
      record "$w, $kind" "$tool" "$(echo "$(date +%s.%N) - $s" | bc -l)" "$(( $(requests) - r0 ))"
    done
    unmount_tool "$w, cold" "$w, warm"
  fi
  pre=sync; post='drop_bucket "wr-$p"'
  run_case "2. write ${WRITE_MIB} MiB" 'wr-$p' 'cp "$work/write.src" "$mnt/file"; wait_size "wr-$p/file" $((WRITE_MIB << 20))'
  pre=; post=
  for n in $LS_NS; do run_case "3. ls -l $n objects" "list-$n" 'ls -l "$mnt" >/dev/null'; done
  run_case "3. find $((TREE_DIRS * TREE_FILES)) objects" tree '( sleep $((WAIT_MAX + 5)); abort_mount ) & wd=$!; timeout "$WAIT_MAX" find "$mnt" >/dev/null || gave_up; kill "$wd" 2>/dev/null || true'
  run_case "4. cp -r ${SMALL_N} x 4 KiB" 'sm-$p' 'cp -r "$work/small/." "$mnt/"; wait_keys "sm-$p" "$SMALL_N"'
  run_case "4. rm ${SMALL_N} files" 'sm-$p' 'find "$mnt" -type f -delete; wait_keys "sm-$p" 0'
  run_case "5. rsync -a ${MIXED_MIB} MiB" 'mx-$p' 'rsync -a --omit-dir-times "$work/mixed/" "$mnt/" || notes+=("$tool: rsync failed"); wait_keys "mx-$p" "$(ls "$work/mixed" | wc -l)"'
  post='drop_bucket "mx-$p"'
  run_case "5. rsync -a again" 'mx-$p' 'rsync -a --omit-dir-times "$work/mixed/" "$mnt/" || notes+=("$tool: rsync failed")'
  post=
  run_case "6. ${PAR_N} parallel readers x ${PAR_MIB} MiB" par 'pids=(); for i in $(seq "$PAR_N"); do cat "$mnt/p$i" >/dev/null & pids+=($!); done; wait "${pids[@]}"'
  pre='rm -rf "$work/cache-s3drive"'
  check_meta='[ "$(grep -c "^-rw------- 1 42 43 " "$work/ls.out")" -eq "$META_N" ] || notes+=("$tool, $w: ls -l showed other modes or owners than stored")'
  run_case "7. ls -l ${META_N} objects with metadata, cold" meta 'ls -ln "$mnt" >"$work/ls.out"; '"$check_meta"
  pre=
  run_case "7. ls -l ${META_N} objects with metadata, warm" meta 'ls -ln "$mnt" >"$work/ls.out"; '"$check_meta"
  # 8. Each pass reads the small objects, then the large one, in new processes with the page
  # cache dropped: the first pass reads what the server has on disk, the second only what the
  # tool's own data cache has there.
  if selected 8; then
    rm -rf "$work/data-cache" "$work/cache-rclone"
    data_cache=1; mount_tool "$tool" again; data_cache=
    for pass in first second; do
      sync; echo 3 >/proc/sys/vm/drop_caches
      for what in files big; do
        if [ $what = files ]; then w="8. read ${AGAIN_N} x 1 MiB again, $pass"; else w="8. read ${READ_MIB} MiB again, $pass"; fi
        g0=$(gets); r0=$(requests); s=$(date +%s.%N)
        if [ $what = files ]; then cat "$mnt"/f* >/dev/null; else cat "$mnt/big" >/dev/null; fi
        record "$w" "$tool" "$(echo "$(date +%s.%N) - $s" | bc -l)" "$(( $(requests) - r0 ))"
        [ "$SERVER" = s3s-fs ] && notes+=("$tool, $w: $(( $(gets) - g0 )) GetObject")
      done
    done
    unmount_tool "8. read ${AGAIN_N} x 1 MiB again, first" "8. read ${AGAIN_N} x 1 MiB again, second" \
      "8. read ${READ_MIB} MiB again, first" "8. read ${READ_MIB} MiB again, second"
    rm -rf "$work/data-cache" "$work/cache-rclone"
  fi
done
done

# ----- the table -----
mib_of() { case $1 in "1."*) echo "$READ_MIB" ;; "8. read $AGAIN_N x"*) echo "$AGAIN_N" ;; "8."*) echo "$READ_MIB" ;; "2."*) echo "$WRITE_MIB" ;; "5. rsync -a $MIXED_MIB"*) echo "$MIXED_MIB" ;; "6."*) echo $((PAR_N * PAR_MIB)) ;; *) echo "" ;; esac; }
echo
echo "s3drive $(git rev-parse --short HEAD 2>/dev/null || echo '?'); $(nproc) cores, Linux $(uname -r); $server_name on 127.0.0.1;"
echo "$(rclone version 2>/dev/null | head -1); $(s3fs --version 2>/dev/null | head -1 | cut -c1-60); aws-cli $(aws --version 2>&1 | cut -d' ' -f1 | cut -d/ -f2)."
if [ -n "${DELAY_MS:-}" ]; then
  echo "Every answer delayed ${DELAY_MS} ms (bench/delay_proxy.py), as from a distant S3."
fi
if [ "$SERVER" = s3s-fs ]; then
  echo "Median of $RUNS runs (min-max). Requests: as s3s-fs logged them, median per run."
else
  echo "Median of $RUNS runs (min-max). Requests: not counted ($server_name keeps no request log)."
fi
echo
echo "| workload | tool | seconds | MiB/s | requests | peak RSS MiB | time vs s3drive |"
echo "|---|---|---|---|---|---|---|"
while IFS= read -r w; do
  base=$(printf '%s\n' ${times[$w|s3drive]:-} | median)
  for t in $TOOLS; do
    [ -n "${times[$w|$t]:-}" ] || continue
    med=$(printf '%s\n' ${times[$w|$t]} | median)
    rq=; [ "$SERVER" = s3s-fs ] && rq=$(printf '%s\n' ${reqs[$w|$t]} | median)
    mib=$(mib_of "$w"); thr=; [ -n "$mib" ] && thr=$(echo "scale=1; $mib / $med" | bc -l)
    ratio=; [ -n "$base" ] && ratio="$(echo "scale=2; $med / $base" | bc -l)x"
    mem=; [ -n "${rss[$w|$t]:-}" ] && mem=$(( ${rss[$w|$t]} / 1024 ))
    printf '| %s | %s | %.2f (%s) | %s | %s | %s | %s |\n' "$w" "$t" "$med" "$(range ${times[$w|$t]})" "$thr" "$rq" "$mem" "$ratio"
  done
done < <(printf '%s\n' "${!times[@]}" | cut -d'|' -f1 | sort -u)
echo
printf 'Daemon peak RSS over all workloads:'
for t in $TOOLS; do
  [ "$t" = direct ] && continue
  m=0; for k in "${!rss[@]}"; do [[ $k == *"|$t" ]] && [ "${rss[$k]}" -gt "$m" ] && m=${rss[$k]}; done
  printf ' %s %d MiB;' "$t" $((m / 1024))
done; echo
# Each note once, with how many times it was made (runs x rows).
if [ ${#notes[@]} -gt 0 ]; then
  printf '%s\n' "${notes[@]}" | sort | uniq -c | while read -r c n; do echo "Note: $n ($c times)"; done
fi
