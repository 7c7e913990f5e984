#!/usr/bin/env bash
# Runs the whole test suite the way CI does: installs what is missing (scripts/setup.sh), then
# every test binary, without stopping at the first one that fails. Extra arguments go to
# `cargo test` (e.g. `scripts/test.sh --test posix`).
#
# The suite must leave the user's own state alone: afterwards it checks that the s3drive cache
# directory of the user running it (~/.cache/s3drive, or $XDG_CACHE_HOME/s3drive) is as it was,
# and that nothing new is left in the temp directory. Either is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

user_cache="${XDG_CACHE_HOME:-$HOME/.cache}/s3drive"
tmp="${TMPDIR:-/tmp}"
cache_state() {
  if [ -e "$user_cache" ]; then find "$user_cache" -printf '%p %y %s %m %T@\n' | sort; else echo "(absent)"; fi
}
tmp_entries() { find "$tmp" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort; }
cache_before=$(cache_state)
tmp_before=$(tmp_entries)

# The tests' own temporary files go to a directory of the suite's, which must be empty at the
# end (what a test left there is reported, then removed).
suite_tmp=$(mktemp -d "$tmp/s3drive-suite.XXXXXX")
# Searchable by others, as the temp dir is: tests run commands as an unprivileged user inside
# mounts below it (what each test keeps private, it makes private itself).
chmod 755 "$suite_tmp"
echo "test: building and running the tests (the first build takes several minutes)" >&2
rc=0
TMPDIR="$suite_tmp" cargo test --no-fail-fast "$@" || rc=$?
if [ -n "$(ls -A "$suite_tmp")" ]; then
  echo "test: FAILED: the tests left these in their temp dir:" >&2
  (cd "$suite_tmp" && find . -maxdepth 3 | head -50) >&2
  rc=1
fi
rm -rf "$suite_tmp" || true

if [ "$(cache_state)" != "$cache_before" ]; then
  echo "test: FAILED: the suite changed $user_cache:" >&2
  diff <(echo "$cache_before") <(cache_state) >&2 || true
  rc=1
fi
left=$(comm -13 <(echo "$tmp_before") <(tmp_entries))
if [ -n "$left" ]; then
  echo "test: FAILED: the suite left these in $tmp:" >&2
  echo "$left" >&2
  rc=1
fi
[ "$rc" -eq 0 ] && echo "test: passed; $user_cache and $tmp are as they were" >&2
exit "$rc"
