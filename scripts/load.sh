#!/usr/bin/env bash
# HTTP load harness (issue 5): the World Mappers example on loopback, pinned to one core,
# loaded by wrk from the other core.
#
#   scripts/load.sh
#
# Installs wrk (Debian's package) if missing, builds the examples in release, mints tokens
# with examples/mint_tokens.rs (a development issuer, which then serves the keys: the API
# finds them by discovery, as in production), and reports req/s, p50/p99 latency and the
# server's CPU time per request for:
#   1. the public route GET /healthz;
#   2. a protected route (GET /api/location/geocode) with one repeated token;
#   3. the same with TOKENS distinct valid tokens in turn (cache on, default size);
#   4. the same with the verified-token cache off (TOKEN_CACHE=0): every request verifies;
#   5. a flood of FLOOD_TOKENS distinct tokens with the cache at each of MEMORY_CACHES
#      entries (more tokens than entries: nearly every request misses), with the server's
#      peak RSS (VmHWM) after it.
# Ratios are to the public route of the same run. With FLOOR=1 (default) it also runs the
# criterion bench of aws-lc-rs's raw RS256 verify on the server's core, and compares the
# auth cost of case 4 (CPU per request above the public route's) with it.
#
# Environment: DURATION (default 10s), WARMUP (default 2s), CONNS (default 32),
# TOKENS (default 2000), FLOOD_TOKENS (default 20000), MEMORY_CACHES (default "1000 10000"),
# SERVER_CPU (default 0), LOAD_CPU (default 1), PORT (default 7301), FLOOR (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNS=${CONNS:-32}
TOKENS=${TOKENS:-2000}
FLOOD_TOKENS=${FLOOD_TOKENS:-20000}
MEMORY_CACHES=${MEMORY_CACHES:-"1000 10000"}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT=${PORT:-7301}
FLOOR=${FLOOR:-1}
BASE=http://127.0.0.1:$PORT
PROTECTED=$BASE/api/location/geocode
TICK=$(getconf CLK_TCK)

if ! command -v wrk >/dev/null; then
  echo "installing wrk (apt-get)" >&2
  apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null
fi
command -v taskset >/dev/null || { echo "load.sh: needs taskset (util-linux)" >&2; exit 1; }
if (( FLOOD_TOKENS < TOKENS )); then FLOOD_TOKENS=$TOKENS; fi

echo "building (release)..." >&2
cargo build --release --quiet --example world_mappers --example mint_tokens
if [ "$FLOOR" = 1 ]; then cargo bench --quiet --bench verify --no-run 2>/dev/null; fi
BIN=target/release/examples

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "load.sh: nothing listens on port $1" >&2
  return 1
}

# The issuer (and the token minter) runs on the load generator's core: idle during the runs.
echo "minting $FLOOD_TOKENS RS256 tokens..." >&2
taskset -c "$LOAD_CPU" "$BIN/mint_tokens" "$FLOOD_TOKENS" "$WORK/flood.txt" >"$WORK/issuer.out" &
PIDS+=($!)
for _ in $(seq 1 1200); do grep -q '^issuer ' "$WORK/issuer.out" && break; sleep 0.1; done
ISSUER=$(awk '/^issuer / {print $2}' "$WORK/issuer.out")
[ -n "$ISSUER" ] || { echo "load.sh: mint_tokens did not start" >&2; exit 1; }
head -n "$TOKENS" "$WORK/flood.txt" >"$WORK/distinct.txt"
head -n 1 "$WORK/flood.txt" >"$WORK/one.txt"
ONE=$(cat "$WORK/one.txt")

SERVER=
start_server() { # TOKEN_CACHE value ("" for the default)
  if [ -n "$SERVER" ]; then kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; fi
  taskset -c "$SERVER_CPU" env PORT="$PORT" ISSUER_BASE_URL="$ISSUER" RUST_LOG=warn \
    TOKEN_CACHE="$1" "$BIN/world_mappers" >"$WORK/server.out" 2>&1 &
  SERVER=$!
  PIDS+=("$SERVER")
  wait_port "$PORT"
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ONE" "$PROTECTED")
  [ "$code" = 200 ] || { echo "load.sh: the protected route answered $code" >&2; cat "$WORK/server.out" >&2; exit 1; }
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }

# run LABEL URL [wrk args]: prints a table row; sets RPS and CPU_US (server CPU µs/request).
run() {
  local label=$1 url=$2; shift 2
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$WARMUP" "$@" "$url" >/dev/null 2>&1
  local t0 out t1 reqs p50 p99 non2xx
  t0=$(cpu_ticks)
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" --latency "$@" "$url" 2>&1)
  t1=$(cpu_ticks)
  RPS=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  CPU_US=$(awk -v d=$((t1 - t0)) -v t="$TICK" -v n="$reqs" 'BEGIN {printf "%.2f", d / t * 1e6 / n}')
  printf '| %-46s | %9.0f | %8s | %8s | %7s | %s |\n' "$label" "$RPS" "$p50" "$p99" "$CPU_US" "${non2xx:-0}"
}

header() {
  printf '| %-46s | %9s | %8s | %8s | %7s | %s |\n' case "req/s" p50 p99 "CPU µs" "non-2xx"
  echo "|---|---|---|---|---|---|"
}

hwm_mib() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$SERVER/status"; }
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$SERVER/status"; }

echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# server: world_mappers (release) on CPU $SERVER_CPU; wrk -t1 -c$CONNS -d$DURATION on CPU $LOAD_CPU (after a $WARMUP warm-up); RS256 tokens; CPU µs = server CPU time per request"
echo
header
start_server ""
run "GET /healthz (public)" "$BASE/healthz"
PUBLIC_RPS=$RPS PUBLIC_CPU=$CPU_US
run "protected, one repeated token" "$PROTECTED" -H "Authorization: Bearer $ONE"
REPEAT_RPS=$RPS REPEAT_CPU=$CPU_US
TOKENS_FILE="$WORK/distinct.txt" run "protected, $TOKENS distinct tokens (cache on)" "$PROTECTED" -s scripts/tokens.lua
DISTINCT_RPS=$RPS DISTINCT_CPU=$CPU_US
start_server 0
TOKENS_FILE="$WORK/distinct.txt" run "protected, $TOKENS distinct tokens, cache off" "$PROTECTED" -s scripts/tokens.lua
OFF_RPS=$RPS OFF_CPU=$CPU_US
run "GET /healthz (public), again" "$BASE/healthz"
PUBLIC2_RPS=$RPS PUBLIC2_CPU=$CPU_US

echo
echo "Ratios to the public route (req/s), one run:"
awk -v p="$PUBLIC_RPS" -v a="$REPEAT_RPS" -v b="$DISTINCT_RPS" -v c="$OFF_RPS" -v p2="$PUBLIC2_RPS" 'BEGIN {
  printf "  repeated token:            %.3f  (target >= 0.95, aim 0.97)\n", a / p
  printf "  %d distinct tokens, cache: %.3f\n", '"$TOKENS"', b / p
  printf "  distinct tokens, no cache: %.3f\n", c / p
  printf "  public route, second run:  %.3f  (the noise between two runs of the same case)\n", p2 / p
}'
echo "Auth cost, server CPU µs per request above the public route's (${PUBLIC_CPU} µs):"
awk -v p="$PUBLIC_CPU" -v a="$REPEAT_CPU" -v b="$DISTINCT_CPU" -v c="$OFF_CPU" 'BEGIN {
  printf "  repeated token: %.2f µs; distinct, cache on: %.2f µs; distinct, cache off: %.2f µs\n", a - p, b - p, c - p
}'

if [ "$FLOOR" = 1 ]; then
  FLOOR_OUT=$(taskset -c "$SERVER_CPU" cargo bench --quiet --bench verify -- --exact verify/RS256/raw 2>/dev/null || true)
  FLOOR_US=$(awk '/time:/ {v=$5; u=$6; if (u=="ns") v/=1000; if (u=="ms") v*=1000; print v; exit}' <<<"$FLOOR_OUT")
  if [ -n "$FLOOR_US" ]; then
    awk -v f="$FLOOR_US" -v p="$PUBLIC_CPU" -v c="$OFF_CPU" 'BEGIN {
      printf "Raw aws-lc-rs RS256 verify (criterion, CPU %s): %.2f µs; cache-off auth cost / raw verify: %.2f (target <= 1.1; includes the route'"'"'s handler and extractor difference)\n", "'"$SERVER_CPU"'", f, (c - p) / f
    }'
  else
    echo "Raw verify floor: the criterion bench did not run"
  fi
fi

echo
echo "Memory: a flood of $FLOOD_TOKENS distinct tokens (more than the cache holds), peak RSS after it"
printf '| %-22s | %9s | %8s | %8s | %9s | %9s | %9s |\n' "TOKEN_CACHE" "req/s" p50 p99 "RSS start" "RSS end" "peak RSS"
echo "|---|---|---|---|---|---|---|"
for entries in 0 $MEMORY_CACHES; do
  start_server "$entries"
  before=$(rss_mib)
  out=$(TOKENS_FILE="$WORK/flood.txt" taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s scripts/tokens.lua "$PROTECTED" 2>&1)
  printf '| %-22s | %9.0f | %8s | %8s | %6s MiB | %6s MiB | %6s MiB |\n' "$entries" \
    "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" "$(awk '$1=="50%" {print $2}' <<<"$out")" \
    "$(awk '$1=="99%" {print $2}' <<<"$out")" "$before" "$(rss_mib)" "$(hwm_mib)"
done
echo
echo "# load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
