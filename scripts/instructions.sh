#!/usr/bin/env bash
# Instruction counts (issue 5): what the load harness measures in time, counted instead, so
# that a shared, noisy machine gives the same figures twice. callgrind counts the user-space
# instructions of a program (not the kernel's share of a request, nor cache misses).
#
#   scripts/instructions.sh
#
# 1. The World Mappers example (release, one worker thread) under callgrind, loaded by wrk
#    (2 connections) for 6 s per route after a 3 s warm-up; the counters are reset before and
#    dumped after each route, and divided by the requests wrk counted:
#    GET /healthz (public), the same with a token's Authorization header, GET /api/ping
#    (protected, the same handler as /healthz) and GET /api/location/geocode (protected, the
#    scope extractor and a JSON answer), with one repeated token (a cache hit).
# 2. `Verifier::verify` with the cache off (the `verify/<ALG>/cold` criterion bench under
#    callgrind's profile mode): instructions per call, and those outside the signature check
#    (`Key::verify`), which is what the cold path adds to the backend.
#
# Installs valgrind and wrk (Debian's packages) if missing. Environment: PORT (default 7399),
# ALG (default RS256), KEEP (a folder: the callgrind files are copied there, one per route
# and one for the cold path, for `callgrind_annotate --inclusive=yes --tree=calling FILE`).
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-7399}
ALG=${ALG:-RS256}
for tool in valgrind:valgrind wrk:wrk; do
  if ! command -v "${tool%%:*}" >/dev/null; then
    echo "installing ${tool#*:} (apt-get)" >&2
    apt-get update -qq >/dev/null && apt-get install -y -qq "${tool#*:}" >/dev/null
  fi
done

echo "building (release)..." >&2
cargo build --release --quiet --example world_mappers --example mint_tokens
BENCH=$(cargo bench --bench verify --no-run 2>&1 | sed -n 's/.*Executable .*(\([^)]*\)).*/\1/p' | tail -1)
# shellcheck source=scripts/harness.sh
. scripts/harness.sh
start_issuer 10 "$WORK/tokens.txt"
ONE=$(head -n 1 "$WORK/tokens.txt")

env PORT="$PORT" ISSUER_BASE_URL="$ISSUER" RUST_LOG=warn TOKIO_WORKER_THREADS=1 \
  valgrind --tool=callgrind --callgrind-out-file="$WORK/server.%p" \
  "$BIN/world_mappers" >"$WORK/server.out" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
for _ in $(seq 1 600); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done

BASE=http://127.0.0.1:$PORT
echo "# $(date -u +%Y-%m-%dT%H:%MZ): user-space instructions per request, world_mappers (release) under callgrind"
printf '| %-58s | %9s | %13s |\n' route requests "instructions"
echo "|---|---|---|"
part=0
route() { # LABEL URL [wrk args]
  local label=$1 url=$2 out n total
  shift 2
  wrk -t1 -c2 -d3s "$@" "$url" >/dev/null 2>&1
  callgrind_control -z "$SERVER" >/dev/null 2>&1
  out=$(wrk -t1 -c2 -d6s "$@" "$url" 2>&1)
  part=$((part + 1))
  callgrind_control -d "route$part" "$SERVER" >/dev/null 2>&1
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  total=$(awk '/^summary:/ {print $2}' "$WORK/server.$SERVER.$part")
  printf '| %-58s | %9s | %13s |\n' "$label" "$n" "$((total / n))"
}
route "GET /healthz" "$BASE/healthz"
route "GET /healthz, with the token's Authorization header" "$BASE/healthz" -H "Authorization: Bearer $ONE"
route "GET /api/ping, one repeated token" "$BASE/api/ping" -H "Authorization: Bearer $ONE"
route "GET /api/location/geocode, one repeated token" "$BASE/api/location/geocode" -H "Authorization: Bearer $ONE"
kill "$SERVER"

echo
echo "# Verifier::verify, cache off ($ALG, 64 distinct tokens in turn), per call"
valgrind --tool=callgrind --callgrind-out-file="$WORK/cold.out" \
  "$BENCH" --bench --profile-time 3 "verify/$ALG/cold\$" >/dev/null 2>&1
callgrind_annotate --inclusive=yes --tree=calling --threshold=100 "$WORK/cold.out" >"$WORK/cold.tree" 2>/dev/null
awk '
  /\*  \?\?\?:bearer_guard::verify::Inner::verify_uncached::\{\{closure\}\} / { gsub(",", "", $1); whole = $1; inside = 1; next }
  inside && /bearer_guard::crypto::Key::verify \(/ { gsub(",", "", $1); sig = $1; n = $(NF - 1); gsub("[(,x)]", "", n) }
  inside && /^$/ { inside = 0 }
  END {
    if (n == 0) { print "the cold bench did not run"; exit 1 }
    printf "| calls | instructions per call | of which the signature check | the rest |\n|---|---|---|---|\n"
    printf "| %d | %d | %d | %d |\n", n, whole / n, sig / n, (whole - sig) / n
  }' "$WORK/cold.tree"
if [ -n "${KEEP:-}" ]; then
  mkdir -p "$KEEP"
  cp "$WORK"/server.*.* "$WORK/cold.out" "$KEEP"/
  echo "callgrind files in $KEEP"
fi
