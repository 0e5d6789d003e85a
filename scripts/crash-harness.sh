#!/usr/bin/env bash
# Kill -9 harness: runs the real `holdfast serve` binary under a write load,
# SIGKILLs it at random moments, restarts it and verifies that no
# acknowledged write is lost, no batch is half-applied, the revision never
# goes backwards and checks answer right. The logic lives in
# tests/it/crash.rs (its short version runs in `cargo test`).
#
#   scripts/crash-harness.sh [--cycles 100] [--durability sync|buffered] [--seed 42] [--writers 4]
#                            [--datastore postgres://USER@HOST:PORT/DB]   (an empty database)
set -euo pipefail
cd "$(dirname "$0")/.."
cycles=100 durability=sync seed=42 writers=4 datastore=
while [ $# -gt 0 ]; do
  case "$1" in
    --cycles) cycles="$2"; shift 2 ;;
    --durability) durability="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --writers) writers="$2"; shift 2 ;;
    --datastore) datastore="$2"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
HOLDFAST_CRASH_CYCLES="$cycles" HOLDFAST_CRASH_DURABILITY="$durability" \
HOLDFAST_CRASH_SEED="$seed" HOLDFAST_CRASH_WRITERS="$writers" HOLDFAST_CRASH_DATASTORE="$datastore" \
  exec cargo test --release --test it -- --ignored --exact --nocapture crash::sigkill_cycles_from_env
