#!/usr/bin/env bash
# No warnings in any feature set, built the way a dependent crate builds bearer-guard: the
# library alone (no cfg(test), no dev-dependencies) with each single feature, with none, and
# with the defaults. An item used only by tests or by another feature warns there
# ("never constructed", "never used"), which every user of that feature set would see.
#
#   scripts/check-features.sh
#
# RUSTFLAGS is left alone (`-D warnings` there would rebuild every dependency): the output is
# searched for warnings instead. Every set is checked; each that warns is printed, and the
# script then fails.
set -euo pipefail
cd "$(dirname "$0")/.."

sets=(none default aws-lc-rs rust-crypto tls axum dev-issuer tonic tonic-tls client introspection metrics redis)
failed=0
for set in "${sets[@]}"; do
  case $set in
    default) args=() ;;
    none) args=(--no-default-features) ;;
    *) args=(--no-default-features --features "$set") ;;
  esac
  if ! out=$(cargo check --lib --quiet "${args[@]}" 2>&1); then
    printf 'cargo check --lib %s failed:\n%s\n' "${args[*]}" "$out" >&2
    exit 1
  fi
  if grep -q '^warning' <<<"$out"; then
    printf 'cargo check --lib %s warns:\n%s\n' "${args[*]}" "$out" >&2
    failed=1
  else
    printf 'features %-12s no warnings\n' "$set"
  fi
done
exit "$failed"
