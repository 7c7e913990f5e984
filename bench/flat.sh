#!/usr/bin/env bash
# One folder of FLAT_N objects (100,000) on Garage (one node; see bench/lib.sh for installing
# it): `ls -l` cold and again within the TTL, for s3drive (metadata from HeadObject, the default,
# and --metadata-from listing), rclone mount and s3fs, beside `aws s3 ls` of the folder. The
# rows bench/scale.sh cannot measure on s3s-fs, which reads a whole directory for every page.
# Requests are s3drive's own count (s3drive status); Garage keeps no request log.
#
#   bench/flat.sh                 about 15 minutes on 2 cores (filling takes most of it)
#   SETTLE=60                     seconds after the second `ls -l` before the RSS is read again
#   FLAT_N=20000 TOOLS=s3drive bench/flat.sh
#   DELAY_MS=20 TOOLS=s3drive     every answer 20 ms away (bench/delay_proxy.py), as from a
#                                 distant region; the TTL is 10 s (the default) rather than 120 s,
#                                 so the walk outlasts it and the large-folder rules are measured
#   METADATA_TTL=...              the mount's --metadata-ttl (default 120, or 10 with DELAY_MS)
set -euo pipefail
cd "$(dirname "$0")/.."
FLAT_N=${FLAT_N:-100000}
SETTLE=${SETTLE:-60}
TOOLS=${TOOLS:-"s3drive s3drive-listing rclone s3fs direct"}
SERVER=garage
port=${BENCH_PORT:-8947}
size_mib=0
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_setup 2048
make_bucket flat
echo "putting $FLAT_N objects (32 at a time)" >&2
python3 - "$ep" "$FLAT_N" <<'PY'
import sys, botocore.config, botocore.session
from concurrent.futures import ThreadPoolExecutor
ep, n = sys.argv[1], int(sys.argv[2])
c = botocore.session.get_session().create_client("s3", endpoint_url=ep, region_name="us-east-1",
    config=botocore.config.Config(max_pool_connections=32))
def put(i):
    c.put_object(Bucket="flat", Key=f"many/f{i:06d}", Body=b"x")
with ThreadPoolExecutor(32) as pool:
    list(pool.map(put, range(n)))
PY
if [ -n "${DELAY_MS:-}" ]; then
  # Filled directly above; from here every tool goes through the delay.
  python3 bench/delay_proxy.py "$((port + 2))" "$port" "$DELAY_MS" 2>>"$work/delay.log" &
  helpers+=($!)
  ep=http://127.0.0.1:$((port + 2))
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$((port + 2))) 2>/dev/null && break; sleep 0.1; done
fi
ttl=${METADATA_TTL:-$([ -n "${DELAY_MS:-}" ] && echo 10 || echo 120)}
secs() { local s; s=$(date +%s.%N); "$@" >/dev/null 2>&1; printf '%.1f' "$(echo "$(date +%s.%N) - $s" | bc -l)"; }
reqs() { sleep 0.3; ./target/release/s3drive status "$mnt" | awk '/^requests:/ {print $2}'; }
# Requests of one kind so far (HeadObject, ListObjectsV2), from s3drive status.
reqs_of() { ./target/release/s3drive status "$mnt" | awk -v op="$1" '$1 == op {print $2; f=1} END {if (!f) print 0}'; }
mounted() { for _ in $(seq 300); do grep -q " $mnt " /proc/mounts && return 0; sleep 0.05; done; echo "not mounted" >&2; exit 1; }
peak() { awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$daemon/status"; }
rows=()
for tool in $TOOLS; do
  case $tool in
    direct)
      rows+=("| aws s3 ls of the folder | aws CLI | $(secs env -u AWS_CA_BUNDLE aws --endpoint-url "$ep" s3 ls s3://flat/many/) | | | |")
      continue ;;
    s3drive|s3drive-listing)
      from=head; [ "$tool" = s3drive-listing ] && from=listing
      ./target/release/s3drive --foreground --endpoint-url "$ep" --force-path-style --metadata-ttl "$ttl" \
        --metadata-from "$from" --cache-dir "$work/cache-$tool" flat "$mnt" 2>>"$work/s3drive.log" & ;;
    rclone)
      env -u AWS_CA_BUNDLE RCLONE_CONFIG_B_TYPE=s3 RCLONE_CONFIG_B_PROVIDER=Other RCLONE_CONFIG_B_ENV_AUTH=false \
        RCLONE_CONFIG_B_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" RCLONE_CONFIG_B_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
        RCLONE_CONFIG_B_ENDPOINT="$ep" RCLONE_CONFIG_B_REGION=us-east-1 rclone mount "b:flat" "$mnt" \
        --cache-dir "$work/cache-rclone" >>"$work/rclone.log" 2>&1 & ;;
    s3fs)
      echo "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" >"$work/s3fs.passwd"; chmod 600 "$work/s3fs.passwd"
      s3fs flat "$mnt" -f -o url="$ep" -o use_path_request_style -o passwd_file="$work/s3fs.passwd" \
        -o endpoint=us-east-1 >>"$work/s3fs.log" 2>&1 & ;;
  esac
  daemon=$!
  mounted
  r0=; [[ $tool == s3drive* ]] && r0=$(reqs) && h0=$(reqs_of HeadObject) && l0=$(reqs_of ListObjectsV2)
  cold=$(secs ls -l "$mnt/many"); r1=; [[ $tool == s3drive* ]] && r1=$(reqs)
  per=
  if [ -n "$r0" ]; then
    per="$(echo "scale=2; ($r1 - $r0) / $FLAT_N" | bc -l) a name ($(( $(reqs_of HeadObject) - h0 )) HeadObject, $(( $(reqs_of ListObjectsV2) - l0 )) ListObjectsV2)"
  fi
  again=$(secs ls -l "$mnt/many"); r2=; [[ $tool == s3drive* ]] && r2=$(reqs)
  sleep "$SETTLE"; later=$(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$daemon/status")
  rq1=; rq2=; [ -n "$r0" ] && rq1=$((r1 - r0)) && rq2=$((r2 - r1))
  n=$(ls "$mnt/many" | wc -l)
  rows+=("| ls -l of the folder ($n names), cold | $tool | $cold | $rq1 ${per:+($per)} | $(peak) | |")
  rows+=("| ls -l again, within the TTL | $tool | $again | $rq2 | $(peak) | $later |")
  fusermount3 -u "$mnt"; wait "$daemon" || true; daemon=
done
echo
echo "bench/flat.sh on $server_name, $(nproc) cores, $(date -u +%Y-%m-%d); one folder of $FLAT_N objects${DELAY_MS:+; every answer ${DELAY_MS} ms away; --metadata-ttl $ttl}"
echo
echo "| workload | tool | seconds | requests | peak RSS MiB | RSS $SETTLE s later MiB |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
