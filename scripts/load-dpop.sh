#!/usr/bin/env bash
# DPoP load test (issue 14): requests per second of a DPoP route against the same route with
# Bearer, on loopback. The World Mappers example (release, DPOP=allowed) pinned to one core,
# loaded by wrk (one thread) from the other core, GET /api/location/geocode with one repeated
# access token (a verified-token cache hit) either way:
#   - Bearer: `Authorization: Bearer <token>` (a token without `cnf`);
#   - DPoP: `Authorization: DPoP <token bound by cnf.jkt>` and a fresh ES256 proof per request
#     (scripts/dpop.lua), the proofs signed in advance by the `dpop` bench's helper
#     (`load-proofs`), PROOFS of them per round, just before the round (they stay fresh:
#     the server accepts proofs up to 60 s old).
# ROUNDS rounds, each a Bearer run and a DPoP run of DURATION, in alternating order; the
# ratio DPoP / Bearer of each round, and the median; also the server's CPU time per request
# (/proc/PID/stat) and the capacity ratio it gives (Bearer CPU / DPoP CPU: the req/s ratio
# of a saturated core, which holds even when wrk or other load sets the pace). A DPoP run that had too few proofs shows
# non-2xx answers (replays), reported beside it.
#
#   scripts/load-dpop.sh
#
# Environment: DURATION (default 3s), ROUNDS (default 4), CONNS (default 8), PROOFS
# (default 60000), SERVER_CPU (default 0), LOAD_CPU (default 1), PORT (default 7302).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-3s}
ROUNDS=${ROUNDS:-4}
CONNS=${CONNS:-8}
PROOFS=${PROOFS:-60000}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT=${PORT:-7302}
BASE=http://127.0.0.1:$PORT
URL=$BASE/api/location/geocode

command -v wrk >/dev/null || { echo "load-dpop.sh: needs wrk" >&2; exit 1; }
command -v taskset >/dev/null || { echo "load-dpop.sh: needs taskset (util-linux)" >&2; exit 1; }

echo "building (release)..." >&2
cargo build --release --quiet --example world_mappers --example mint_tokens
HELPER=$(cargo bench --bench dpop --no-run 2>&1 | sed -n 's/.*Executable .*(\([^)]*\)).*/\1/p' | tail -1)
# shellcheck source=scripts/harness.sh
. scripts/harness.sh

JKT=$("$HELPER" load-key "$WORK/client.key")
export DPOP_JKT=$JKT
start_issuer 1 "$WORK/tokens.txt"
BEARER=$(head -n 1 "$WORK/tokens.txt")
BOUND=$(head -n 1 "$WORK/tokens.txt.dpop")

env PORT="$PORT" PUBLIC_URL="$BASE" ISSUER_BASE_URL="$ISSUER" DPOP=allowed RUST_LOG=warn \
  TOKIO_WORKER_THREADS=1 taskset -c "$SERVER_CPU" "$BIN/world_mappers" >"$WORK/server.out" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
TICK=$(getconf CLK_TCK)
for _ in $(seq 1 600); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done

cpu() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; } # the server's CPU ticks
run() { # wrk args...: prints "req/s non-2xx server-CPU-µs-per-request"
  local out before after
  before=$(cpu)
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" "$@" 2>&1)
  after=$(cpu)
  awk -v t=$((after - before)) -v hz="$TICK" '/requests in/ {q = $1} /^Requests\/sec/ {r = $2}
    /Non-2xx/ {n = $NF} END {printf "%s %d %.1f\n", r, n, t / hz * 1e6 / q}' <<<"$out"
}
bearer() { run -H "Authorization: Bearer $BEARER" "$URL"; }
dpop() {
  "$HELPER" load-proofs "$WORK/client.key" "$PROOFS" "$URL" "$BOUND" "$WORK/proofs.txt"
  PROOFS_FILE="$WORK/proofs.txt" TOKEN="$BOUND" run -s scripts/dpop.lua "$URL"
}

# Both kinds of request must succeed before anything is measured.
curl -fsS -o /dev/null -H "Authorization: Bearer $BEARER" "$URL"
"$HELPER" load-proofs "$WORK/client.key" 1 "$URL" "$BOUND" "$WORK/one.txt"
curl -fsS -o /dev/null -H "Authorization: DPoP $BOUND" -H "DPoP: $(cat "$WORK/one.txt")" "$URL"
taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d1s -H "Authorization: Bearer $BEARER" "$URL" >/dev/null

echo "# $(date -u +%Y-%m-%dT%H:%MZ): GET /api/location/geocode, $CONNS connections, $DURATION runs"
echo "| round | Bearer req/s | DPoP req/s | DPoP non-2xx | DPoP / Bearer | server CPU µs/request: Bearer | DPoP | capacity ratio |"
echo "|---|---|---|---|---|---|---|---|"
ratios=()
caps=()
for r in $(seq 1 "$ROUNDS"); do
  if (( r % 2 )); then read -r b _ bc < <(bearer); read -r d n dc < <(dpop)
  else read -r d n dc < <(dpop); read -r b _ bc < <(bearer); fi
  ratio=$(awk -v d="$d" -v b="$b" 'BEGIN {printf "%.3f", d / b}')
  cap=$(awk -v d="$dc" -v b="$bc" 'BEGIN {printf "%.3f", b / d}')
  ratios+=("$ratio")
  caps+=("$cap")
  echo "| $r | $b | $d | $n | $ratio | $bc | $dc | $cap |"
done
median() { sort -n | awk '{v[NR] = $1} END {
  printf "%.3f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "median DPoP / Bearer req/s: $(printf '%s\n' "${ratios[@]}" | median)"
echo "median capacity ratio (Bearer / DPoP server CPU per request, what a saturated core gives): $(printf '%s\n' "${caps[@]}" | median)"
