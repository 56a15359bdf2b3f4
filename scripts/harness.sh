# Shared by scripts/load.sh and scripts/instructions.sh (sourced, not run): the examples'
# folder, a scratch folder, and the background processes stopped on exit.

BIN=${CARGO_TARGET_DIR:-target}/release/examples
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# start_issuer COUNT FILE [taskset args...]: mints COUNT tokens into FILE with a development
# issuer left serving discovery and the JWKS; sets ISSUER to its URL.
start_issuer() {
  local count=$1 file=$2
  shift 2
  "$@" "$BIN/mint_tokens" "$count" "$file" >"$WORK/issuer.out" &
  PIDS+=($!)
  for _ in $(seq 1 1200); do grep -q '^issuer ' "$WORK/issuer.out" && break; sleep 0.1; done
  ISSUER=$(awk '/^issuer / {print $2}' "$WORK/issuer.out")
  [ -n "$ISSUER" ] || { echo "$(basename "$0"): mint_tokens did not start" >&2; exit 1; }
}
