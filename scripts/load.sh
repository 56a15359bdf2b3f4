#!/usr/bin/env bash
# HTTP load harness (issue 5): the World Mappers example on loopback, pinned to one core,
# loaded by wrk from the other core.
#
#   scripts/load.sh
#
# Installs wrk (Debian's package) if missing, builds the examples in release, mints tokens
# with examples/mint_tokens.rs (a development issuer, which then serves the keys: the API
# finds them by discovery, as in production), and reports req/s, p50/p99 latency and the
# server's CPU time per request (and the capacity ratios it gives, which hold even when wrk,
# not the server, sets the pace on a shared machine) for:
#   1. the public route GET /healthz (also with the protected requests' Authorization header,
#      which separates the cost of the bigger request from the layer's);
#   2. the protected GET /api/ping (any valid token; answers `ok` as /healthz does, so the
#      two differ only by the layer and the token), and GET /api/location/geocode (the
#      scope extractor and a JSON answer), each with one repeated token;
#   3. the same with TOKENS distinct valid tokens in turn (cache on, default size);
#   4. the same with the verified-token cache off (TOKEN_CACHE=0): every request verifies;
#   5. a flood of FLOOD_TOKENS distinct tokens with the cache at each of MEMORY_CACHES
#      entries (more tokens than entries: nearly every request misses), with the server's
#      peak RSS (VmHWM) after it.
# Ratios are to the public route measured in the same round, seconds before. With FLOOR=1
# (default) it also runs the criterion bench of aws-lc-rs's raw RS256 verify on the server's
# core, and compares the cost of case 4 (CPU per request above the public route's) with it.
#
# Environment: DURATION (default 5s), WARMUP (default 1s), CONNS (default 32),
# TOKENS (default 2000), FLOOD_TOKENS (default 20000), MEMORY_CACHES (default "1000 10000"),
# SERVER_CPU (default 0), LOAD_CPU (default 1), PORT (default 7301), FLOOR (default 1),
# PAIRS (default 15) and PAIR_DURATION (default 2s): cases 1 and 2 run in rotation, that many
# rounds of runs that long; ROUNDS (default 3): cases 3 and 4 run that many times, each
# beside its own public-route run. The machine may be shared, so the summary gives the
# median of the rounds' ratios.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
CONNS=${CONNS:-32}
TOKENS=${TOKENS:-2000}
FLOOD_TOKENS=${FLOOD_TOKENS:-20000}
MEMORY_CACHES=${MEMORY_CACHES:-"1000 10000"}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT=${PORT:-7301}
FLOOR=${FLOOR:-1}
ROUNDS=${ROUNDS:-3}
PAIRS=${PAIRS:-15}
PAIR_DURATION=${PAIR_DURATION:-2s}
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
# shellcheck source=scripts/harness.sh
. scripts/harness.sh

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
start_issuer "$FLOOD_TOKENS" "$WORK/flood.txt" taskset -c "$LOAD_CPU"
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
  if [ -z "${RUN_DURATION:-}" ]; then
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$WARMUP" "$@" "$url" >/dev/null 2>&1
  fi
  local t0 out t1 reqs p50 p99 non2xx
  t0=$(cpu_ticks)
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${RUN_DURATION:-$DURATION}" --latency "$@" "$url" 2>&1)
  t1=$(cpu_ticks)
  RPS=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  CPU_US=$(awk -v d=$((t1 - t0)) -v t="$TICK" -v n="$reqs" 'BEGIN {printf "%.2f", d / t * 1e6 / n}')
  BUSY_PCT=$(awk -v r="$RPS" -v c="$CPU_US" 'BEGIN {printf "%.0f%%", r * c / 1e4}')
  printf '| %-50s | %9.0f | %8s | %8s | %7s | %5s | %s |\n' "$label" "$RPS" "$p50" "$p99" "$CPU_US" "$BUSY_PCT" "${non2xx:-0}"
}

header() {
  printf '| %-50s | %9s | %8s | %8s | %7s | %5s | %s |\n' case "req/s" p50 p99 "CPU µs" busy "non-2xx"
  echo "|---|---|---|---|---|---|---|"
}

hwm_mib() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$SERVER/status"; }
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$SERVER/status"; }

echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# server: world_mappers (release) on CPU $SERVER_CPU; wrk -t1 -c$CONNS -d$DURATION on CPU $LOAD_CPU (after a $WARMUP warm-up); RS256 tokens"
echo "# CPU µs = the server's CPU time per request; busy = the share of its core it used (under ~95 %, wrk, not the server, set the pace)"
echo
# ratio A B: A / B with 3 decimals. median X...: the median of its arguments.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a - b}'; }

# Each round measures the public route next to the cases it is compared with, so that a
# ratio compares two runs a few seconds apart; the summary gives the median over rounds.
R_REPEAT=() H_REPEAT=() K_REPEAT=() C_REPEAT=() C_HEADER=() PUBLIC_CPUS=() BUSY=()
R_PING=() H_PING=() K_PING=() C_PING=()
R_DISTINCT=() R_OFF=() C_DISTINCT=() C_OFF=() K_DISTINCT=() K_OFF=()
# capacity A B: the req/s ratio of two cases on a saturated core, from their CPU per request.
capacity() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b / a}'; }
header
start_server ""

# The target: short runs of the public route, the public route sent the protected requests'
# header, and the protected route with one repeated token, in rotation (the order reversed
# every other round, so that a drift of the machine's speed weighs on all three alike); each
# ratio compares runs seconds apart, and the summary gives the median over PAIRS rounds.
taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$WARMUP" -H "Authorization: Bearer $ONE" "$PROTECTED" >/dev/null 2>&1
declare -A RPS_OF CPU_OF
for r in $(seq 1 "$PAIRS"); do
  cases=(public header ping repeated)
  if (( r % 2 == 0 )); then cases=(repeated ping header public); fi
  for c in "${cases[@]}"; do
    case $c in
      public) RUN_DURATION=$PAIR_DURATION run "GET /healthz (public), round $r" "$BASE/healthz" ;;
      header) RUN_DURATION=$PAIR_DURATION run "GET /healthz with the token's header, round $r" "$BASE/healthz" -H "Authorization: Bearer $ONE" ;;
      ping) RUN_DURATION=$PAIR_DURATION run "GET /api/ping, one repeated token, round $r" "$BASE/api/ping" -H "Authorization: Bearer $ONE" ;;
      repeated) RUN_DURATION=$PAIR_DURATION run "protected, one repeated token, round $r" "$PROTECTED" -H "Authorization: Bearer $ONE" ;;
    esac
    RPS_OF[$c]=$RPS CPU_OF[$c]=$CPU_US
    BUSY+=("${BUSY_PCT%\%}")
  done
  PUBLIC_CPUS+=("${CPU_OF[public]}")
  R_REPEAT+=("$(ratio "${RPS_OF[repeated]}" "${RPS_OF[public]}")")
  H_REPEAT+=("$(ratio "${RPS_OF[repeated]}" "${RPS_OF[header]}")")
  K_REPEAT+=("$(capacity "${CPU_OF[repeated]}" "${CPU_OF[public]}")")
  C_REPEAT+=("$(minus "${CPU_OF[repeated]}" "${CPU_OF[public]}")")
  C_HEADER+=("$(minus "${CPU_OF[header]}" "${CPU_OF[public]}")")
  R_PING+=("$(ratio "${RPS_OF[ping]}" "${RPS_OF[public]}")")
  H_PING+=("$(ratio "${RPS_OF[ping]}" "${RPS_OF[header]}")")
  K_PING+=("$(capacity "${CPU_OF[ping]}" "${CPU_OF[public]}")")
  C_PING+=("$(minus "${CPU_OF[ping]}" "${CPU_OF[public]}")")
done

# distinct_rounds LABEL R C K: ROUNDS rounds of the public route, each beside the distinct
# tokens; appends each round's req/s ratio, CPU above the public route and capacity ratio to
# the arrays named R, C and K.
distinct_rounds() {
  local label=$1 r p_rps p_cpu
  local -n ratios=$2 costs=$3 capacities=$4
  for r in $(seq 1 "$ROUNDS"); do
    run "GET /healthz (public)$label, round $r" "$BASE/healthz"
    p_rps=$RPS p_cpu=$CPU_US
    TOKENS_FILE="$WORK/distinct.txt" run "protected, $TOKENS distinct tokens$label, round $r" "$PROTECTED" -s scripts/tokens.lua
    ratios+=("$(ratio "$RPS" "$p_rps")") costs+=("$(minus "$CPU_US" "$p_cpu")")
    capacities+=("$(capacity "$CPU_US" "$p_cpu")")
  done
}
distinct_rounds "" R_DISTINCT C_DISTINCT K_DISTINCT
start_server 0
distinct_rounds ", cache off" R_OFF C_OFF K_OFF

echo
echo "Ratios to the public route's req/s, each within one round (median; the rounds; $PAIRS rounds of $PAIR_DURATION runs for the repeated token):"
echo "  /api/ping (protected, the same handler as /healthz), repeated token: $(median "${R_PING[@]}")  (${R_PING[*]})  target >= 0.95, aim 0.97"
echo "    the same, to /healthz sent the same Authorization header: $(median "${H_PING[@]}")  (${H_PING[*]})"
echo "  geocode (scope extractor, JSON answer), repeated token: $(median "${R_REPEAT[@]}")  (${R_REPEAT[*]})"
echo "    the same, to /healthz sent the same Authorization header: $(median "${H_REPEAT[@]}")  (${H_REPEAT[*]})"
echo "  $TOKENS distinct tokens, cache on: $(median "${R_DISTINCT[@]}")  (${R_DISTINCT[*]})"
echo "  distinct tokens, cache off:     $(median "${R_OFF[@]}")  (${R_OFF[*]})"
echo "  (a req/s ratio means something only when both runs kept the server's core busy: see 'busy';"
echo "   median busy of the public, header and repeated-token runs: $(median "${BUSY[@]}") %)"
echo "Capacity ratios, from the server's CPU per request (public / protected; median; the rounds):"
echo "  /api/ping, repeated token:      $(median "${K_PING[@]}")  (${K_PING[*]})"
echo "  repeated token:                 $(median "${K_REPEAT[@]}")  (${K_REPEAT[*]})"
echo "  $TOKENS distinct tokens, cache on: $(median "${K_DISTINCT[@]}")  (${K_DISTINCT[*]})"
echo "  distinct tokens, cache off:     $(median "${K_OFF[@]}")  (${K_OFF[*]})"
echo "Server CPU µs per request above the public route's ($(median "${PUBLIC_CPUS[@]}") µs), median:"
echo "  the token's header on /healthz $(median "${C_HEADER[@]}") µs; /api/ping $(median "${C_PING[@]}") µs; geocode, repeated token $(median "${C_REPEAT[@]}") µs;"
echo "  distinct, cache on $(median "${C_DISTINCT[@]}") µs; distinct, cache off $(median "${C_OFF[@]}") µs"
OFF_COST=$(median "${C_OFF[@]}")

if [ "$FLOOR" = 1 ]; then
  FLOOR_OUT=$(taskset -c "$SERVER_CPU" cargo bench --quiet --bench verify -- --exact verify/RS256/raw 2>/dev/null || true)
  FLOOR_US=$(awk '/time:/ {v=$5; u=$6; if (u=="ns") v/=1000; if (u=="ms") v*=1000; print v; exit}' <<<"$FLOOR_OUT")
  if [ -n "$FLOOR_US" ]; then
    awk -v f="$FLOOR_US" -v c="$OFF_COST" 'BEGIN {
      printf "Raw aws-lc-rs RS256 verify (criterion, CPU %s): %.2f µs; cache-off cost above the public route / raw verify: %.2f (target <= 1.1; includes the route'"'"'s handler and extractor)\n", "'"$SERVER_CPU"'", f, c / f
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
