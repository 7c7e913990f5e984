# Shared set-up for the benchmark scripts (sourced, not run). Expects size_mib and port; takes the
# free space needed (MiB) as $1. Starts s3s-fs on 127.0.0.1 with bucket "bench", builds s3drive,
# and defines work, mnt, ep, timeit, median, range, mibs. Everything is cleaned up on exit.
bench_setup() {
  local need=$1
  work=$(mktemp -d /tmp/s3drive-bench.XXXXXX)
  mnt=$work/mnt
  mkdir -p "$mnt" "$work/data/bench"
  local free_mib
  free_mib=$(df -Pm "$work" | awk 'NR==2 {print $4}')
  if [ "$free_mib" -lt "$need" ]; then
    echo "need $need MiB free in $work, have $free_mib" >&2; rm -rf "$work"; exit 1
  fi
  command -v s3s-fs >/dev/null || cargo install s3s-fs --version 0.14.1 --features binary --locked
  python3 -c 'import awscli' 2>/dev/null || python3 -m pip install -q awscli
  cargo build --release -q

  unset AWS_CA_BUNDLE AWS_PROFILE
  export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=benchsecret AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  ep=http://127.0.0.1:$port
  s3s-fs --host 127.0.0.1 --port "$port" --access-key bench --secret-key benchsecret "$work/data" >"$work/s3s.log" 2>&1 &
  server=$!
  daemon=
  trap bench_cleanup EXIT
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
}

bench_cleanup() {
  if grep -q " $mnt " /proc/mounts; then fusermount3 -u "$mnt" || true; fi
  if [ -n "$daemon" ]; then wait "$daemon" 2>/dev/null || true; fi
  kill "$server" 2>/dev/null || true
  rm -rf "$work"
}

# timeit CMD...: runs CMD (output discarded), sets T to the seconds it took; a failure stops the run.
timeit() { local s; s=$(date +%s.%N); "$@" >/dev/null || { echo "failed: $*" >&2; exit 1; }; T=$(echo "$(date +%s.%N) - $s" | bc -l); }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
range() { printf '%s\n' "$@" | sort -g | awk 'NR==1 {mn=$1} {mx=$1} END {printf "%.2f-%.2f", mn, mx}'; }
mibs() { echo "scale=1; $size_mib / $1" | bc -l; }
