#!/usr/bin/env bash
# Write throughput: `cp` of a file into an s3drive mount (timed until cp returns, i.e. until close
# has returned and the object is in S3) against a direct multipart upload of the same file to the
# same server in the same run (`aws s3 cp`, parallel parts), plus the daemon's peak RSS.
# Uses s3s-fs on 127.0.0.1, or Garage with SERVER=garage (see bench/lib.sh).
#   bench/write.sh [SIZE_MIB] [RUNS]      defaults: 4096 MiB, 3 runs
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-4096}
runs=${2:-3}
port=${BENCH_PORT:-8916}
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_setup "$((size_mib * 4 + 2048))"

head -c $((size_mib << 20)) /dev/urandom >"$work/source"
want=$(sha256sum <"$work/source" | cut -d' ' -f1)


t_mount=(); t_aws=(); rss=()
for i in $(seq "$runs"); do
  ./target/release/s3drive --foreground --endpoint-url "$ep" --force-path-style --cache-dir "${BENCH_CACHE_DIR:-$work/cache}" bench "$mnt" 2>"$work/daemon.log" &
  daemon=$!
  for _ in $(seq 200); do grep -q " $mnt " /proc/mounts && break; sleep 0.05; done
  sync  # start each timed run with no writeback pending from the last one
  timeit cp "$work/source" "$mnt/through-mount"; t_mount+=("$T")
  rss+=("$(awk '/VmHWM/ {print $2}' /proc/$daemon/status)")
  fusermount3 -u "$mnt"; wait "$daemon" || true; daemon=
  sync
  timeit aws --endpoint-url "$ep" s3 cp --quiet "$work/source" s3://bench/direct; t_aws+=("$T")
done
got=$(curl_s3 "$ep/bench/through-mount" | sha256sum | cut -d' ' -f1)
[ "$got" = "$want" ] || { echo "MISMATCH: object written through the mount differs" >&2; exit 1; }
m=$(printf '%s\n' "${t_mount[@]}" | median); a=$(printf '%s\n' "${t_aws[@]}" | median)
peak=$(printf '%s\n' "${rss[@]}" | sort -g | tail -1)
cat <<OUT
Sequential write of a ${size_mib} MiB file, until the object is in S3, $server_name on 127.0.0.1, median of $runs runs (min-max):

| writer | seconds | MiB/s | ratio to direct |
|---|---|---|---|
| \`cp\` into the s3drive mount | $(printf %.2f "$m") ($(range "${t_mount[@]}")) | $(mibs "$m") | $(echo "scale=2; $a / $m" | bc -l) |
| aws s3 cp (multipart, parallel parts) | $(printf %.2f "$a") ($(range "${t_aws[@]}")) | $(mibs "$a") | 1.00 |

Object written through the mount identical to the file (sha256): yes. s3drive daemon peak RSS: $((peak / 1024)) MiB.
OUT
