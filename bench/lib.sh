# Shared set-up for the benchmark scripts (sourced, not run). Expects size_mib and port; takes the
# free space needed (MiB) as $1. Starts the server on 127.0.0.1 with bucket "bench", builds
# s3drive, and defines work, mnt, ep, SERVER, server_name, make_bucket, drop_bucket, curl_s3,
# timeit, median, range, mibs. Everything is cleaned up on exit.
#
# SERVER=s3s-fs (default; `cargo install`ed if missing) or SERVER=garage: Garage, a real S3
# server whose CompleteMultipartUpload only joins the parts' metadata (s3s-fs copies and MD5s the
# whole object there, which is most of a 1 GiB upload's time for every client). Garage must be
# on PATH (`cargo install garage --version 2.5.0 --locked --no-default-features --features
# bundled-libs,lmdb`, about 25 minutes on 2 cores); it runs as one node, data and metadata
# under the work directory, no compression, no fsync.
bench_setup() {
  local need=$1
  work=$(mktemp -d /tmp/s3drive-bench.XXXXXX)
  mnt=$work/mnt
  mkdir -p "$mnt"
  local free_mib
  free_mib=$(df -Pm "$work" | awk 'NR==2 {print $4}')
  if [ "$free_mib" -lt "$need" ]; then
    echo "need $need MiB free in $work, have $free_mib" >&2; rm -rf "$work"; exit 1
  fi
  python3 -c 'import awscli' 2>/dev/null || python3 -m pip install -q awscli
  cargo build --release -q

  unset AWS_CA_BUNDLE AWS_PROFILE
  export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  ep=http://127.0.0.1:$port
  daemon=
  server=
  helpers=() # other processes to end on exit (bench/delay_proxy.py)
  trap bench_cleanup EXIT
  SERVER=${SERVER:-s3s-fs}
  case $SERVER in
    s3s-fs)
      command -v s3s-fs >/dev/null || cargo install s3s-fs --version 0.14.1 --features binary --locked
      export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=benchsecret
      mkdir -p "$work/data"
      s3s-fs --host 127.0.0.1 --port "$port" --access-key bench --secret-key benchsecret "$work/data" >"$work/s3s.log" 2>&1 &
      server=$!
      server_name="s3s-fs 0.14.1"
      ;;
    garage) start_garage ;;
    *) echo "SERVER must be s3s-fs or garage" >&2; exit 2 ;;
  esac
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
  make_bucket bench
}

# Buckets: directories of s3s-fs's data directory, or made with Garage's own CLI.
make_bucket() {
  if [ "$SERVER" = s3s-fs ]; then mkdir -p "$work/data/$1"; return; fi
  garage bucket info "$1" >/dev/null 2>&1 && return
  garage bucket create "$1" >/dev/null && garage bucket allow --read --write --owner "$1" --key bench >/dev/null
}
drop_bucket() {
  if [ "$SERVER" = s3s-fs ]; then rm -rf "${work:?}/data/$1"; return; fi
  aws --endpoint-url "$ep" s3 rb --force "s3://$1" >/dev/null 2>&1 || true
}

start_garage() {
  command -v garage >/dev/null || { echo "SERVER=garage needs garage on PATH (see bench/lib.sh)" >&2; exit 1; }
  local g=$work/garage id
  mkdir -p "$g/meta" "$g/data"
  cat >"$g/garage.toml" <<TOML
metadata_dir = "$g/meta"
data_dir = "$g/data"
db_engine = "lmdb"
replication_factor = 1
compression_level = "none"
rpc_bind_addr = "127.0.0.1:$((port + 1000))"
rpc_public_addr = "127.0.0.1:$((port + 1000))"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:$port"
[admin]
api_bind_addr = "127.0.0.1:$((port + 1001))"
TOML
  export GARAGE_CONFIG_FILE=$g/garage.toml
  garage server >"$work/garage.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do garage status >/dev/null 2>&1 && break; sleep 0.1; done
  id=$(garage node id -q 2>/dev/null | cut -d@ -f1)
  garage layout assign -z local -c 100G "$id" >/dev/null
  garage layout apply --version 1 >/dev/null
  # Garage's key ids are GK and 24 hex digits, its secrets 64 hex digits.
  export AWS_ACCESS_KEY_ID=GK0123456789abcdef01234567 AWS_SECRET_ACCESS_KEY=$(printf '%064d' 7)
  garage key import --yes -n bench "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >/dev/null
  server_name="Garage $(garage --version 2>/dev/null | awk '{sub(/^cargo:/, "", $2); print $2}')"
}

# curl with the server's credentials: curl_s3 ARGS... URL
curl_s3() { curl -sf --aws-sigv4 aws:amz:us-east-1:s3 --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"; }

bench_cleanup() {
  if grep -q " $mnt " /proc/mounts; then fusermount3 -u "$mnt" || true; fi
  if [ -n "$daemon" ]; then wait "$daemon" 2>/dev/null || true; fi
  for h in "${helpers[@]}"; do kill "$h" 2>/dev/null || true; done
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}

# timeit CMD...: runs CMD (output discarded), sets T to the seconds it took; a failure stops the run.
timeit() { local s; s=$(date +%s.%N); "$@" >/dev/null || { echo "failed: $*" >&2; exit 1; }; T=$(echo "$(date +%s.%N) - $s" | bc -l); }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
range() { printf '%s\n' "$@" | sort -g | awk 'NR==1 {mn=$1} {mx=$1} END {printf "%.2f-%.2f", mn, mx}'; }
mibs() { echo "scale=1; $size_mib / $1" | bc -l; }
