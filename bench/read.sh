#!/usr/bin/env bash
# Sequential read throughput through an s3drive mount against direct downloads of the same
# object from the same server in the same run (curl, and `aws s3 cp`, which downloads in parallel
# ranges), plus the daemon's peak RSS. Uses s3s-fs (fast, fine for throughput) on 127.0.0.1, or
# Garage with SERVER=garage (see bench/lib.sh).
#   bench/read.sh [SIZE_MIB] [RUNS]      defaults: 1024 MiB, 3 runs
# Prints a Markdown table; docs/BENCHMARKS.md holds the latest one.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
runs=${2:-3}
port=${BENCH_PORT:-8914}
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_setup "$((size_mib * 3 + 1024))"

head -c $((size_mib << 20)) /dev/urandom >"$work/object"
want=$(sha256sum <"$work/object" | cut -d' ' -f1)
aws --endpoint-url "$ep" s3 cp --quiet "$work/object" s3://bench/object
rm "$work/object"

mount_s3drive() {
  ./target/release/s3drive --foreground --endpoint-url "$ep" --force-path-style bench "$mnt" 2>"$work/daemon.log" &
  daemon=$!
  for _ in $(seq 200); do grep -q " $mnt " /proc/mounts && return; sleep 0.05; done
  echo "mount failed" >&2; cat "$work/daemon.log" >&2; exit 1
}
unmount_s3drive() { fusermount3 -u "$mnt"; wait "$daemon" || true; daemon=; }

# Correctness first: the bytes through the mount are the object's bytes.
mount_s3drive
got=$(sha256sum <"$mnt/object" | cut -d' ' -f1)
unmount_s3drive
[ "$got" = "$want" ] || { echo "MISMATCH through the mount" >&2; exit 1; }

t_mount=(); t_curl=(); t_aws=(); rss=()
for _ in $(seq "$runs"); do
  sync
  mount_s3drive   # a fresh mount: cold
  timeit cat "$mnt/object"; t_mount+=("$T")
  rss+=("$(awk '/VmHWM/ {print $2}' /proc/$daemon/status)")
  unmount_s3drive
  timeit curl_s3 -o /dev/null "$ep/bench/object"; t_curl+=("$T")
  timeit aws --endpoint-url "$ep" s3 cp --quiet s3://bench/object -; t_aws+=("$T")
done
m=$(printf '%s\n' "${t_mount[@]}" | median); c=$(printf '%s\n' "${t_curl[@]}" | median); a=$(printf '%s\n' "${t_aws[@]}" | median)
best=$(printf '%s\n%s\n' "$c" "$a" | sort -g | head -1)
peak=$(printf '%s\n' "${rss[@]}" | sort -g | tail -1)
cat <<OUT
Sequential read of a ${size_mib} MiB object, $server_name on 127.0.0.1, median of $runs runs (min-max):

| reader | seconds | MiB/s | ratio to faster direct |
|---|---|---|---|
| s3drive mount, \`cat\` (cold) | $(printf %.2f "$m") ($(range "${t_mount[@]}")) | $(mibs "$m") | $(echo "scale=2; $best / $m" | bc -l) |
| curl (one GET) | $(printf %.2f "$c") ($(range "${t_curl[@]}")) | $(mibs "$c") | $(echo "scale=2; $best / $c" | bc -l) |
| aws s3 cp (parallel ranges) | $(printf %.2f "$a") ($(range "${t_aws[@]}")) | $(mibs "$a") | $(echo "scale=2; $best / $a" | bc -l) |

Bytes through the mount identical to the object (sha256): yes. s3drive daemon peak RSS: $((peak / 1024)) MiB.
OUT
