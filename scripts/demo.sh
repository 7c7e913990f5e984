#!/usr/bin/env bash
# Try s3drive with no AWS account, in one command on a fresh Debian/Ubuntu with Rust: installs
# what is missing (scripts/setup.sh), builds, starts a local S3-compatible server (moto) on
# 127.0.0.1 with sample buckets, mounts it, and waits. Ctrl-C unmounts and stops the server.
#   scripts/demo.sh [MOUNTPOINT]
# With S3DRIVE_DEMO_CHECK=1 it runs the commands it suggests, checks their output and exits
# (scripts/fresh-machine.sh uses that).
set -euo pipefail
cd "$(dirname "$0")/.."
port=${S3DRIVE_DEMO_PORT:-9555}
mnt=${1:-$(mktemp -d /tmp/s3drive-demo.XXXXXX)}
mkdir -p "$mnt"
scripts/setup.sh
echo "demo: building s3drive (the first build takes several minutes)" >&2
cargo build --release
py=.venv/bin/python
"$py" -m moto.server -H 127.0.0.1 -p "$port" >/tmp/s3drive-demo-moto.log 2>&1 &
moto_pid=$!
daemon_pid=
cleanup() {
  if grep -q " $mnt " /proc/mounts; then fusermount3 -u "$mnt" || true; fi
  [ -n "$daemon_pid" ] && wait "$daemon_pid" 2>/dev/null || true
  kill "$moto_pid" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1
unset AWS_CA_BUNDLE AWS_PROFILE
"$py" - "$port" <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1")
for b in ("photos", "reports"):
    s3.create_bucket(Bucket=b)
s3.put_object(Bucket="photos", Key="2024/beach.txt", Body=b"imagine a beach\n")
s3.put_object(Bucket="photos", Key="2024/mountains.txt", Body=b"imagine mountains\n")
s3.put_object(Bucket="photos", Key="albums/", Body=b"")
s3.put_object(Bucket="reports", Key="q1.csv", Body=b"month,sales\njan,10\nfeb,12\nmar,15\n")
s3.put_object(Bucket="reports", Key="big.bin", Body=bytes(range(256)) * 4096 * 8)
PY
./target/release/s3drive --foreground --endpoint-url "http://127.0.0.1:$port" --force-path-style "$mnt" &
daemon_pid=$!
for _ in $(seq 100); do grep -q " $mnt " /proc/mounts && break; sleep 0.1; done
grep -q " $mnt " /proc/mounts || { echo "demo: s3drive did not mount (see its messages above)" >&2; exit 1; }
if [ "${S3DRIVE_DEMO_CHECK:-}" = 1 ]; then
  ls -l "$mnt" "$mnt/photos/2024"
  grep -q "^feb,12$" "$mnt/reports/q1.csv"
  cmp <(cat "$mnt/reports/big.bin") <("$py" -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 4096 * 8)')
  getfattr -n user.s3.presigned_url --only-values "$mnt/reports/q1.csv" | grep -q "^http://127.0.0.1:$port/reports/q1.csv?"
  ./target/release/s3drive status "$mnt" | grep -q "^requests: "
  echo "demo: checked: listing, reads, a share link and status work" >&2
  exit 0
fi
cat <<MSG

s3drive is mounted on $mnt (buckets "photos" and "reports" on a local moto server).
Try, in another terminal:
  ls -l $mnt $mnt/photos/2024
  cat $mnt/reports/q1.csv
  find $mnt; du -sh $mnt/reports; df -h $mnt
  cp -r $mnt/photos /tmp/photos-copy
  getfattr -n user.s3.presigned_url --only-values $mnt/reports/q1.csv   # a share link
  ./target/release/s3drive status $mnt
Press Ctrl-C here to unmount and stop.
MSG
wait "$daemon_pid"
