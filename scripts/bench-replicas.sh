#!/usr/bin/env bash
# PostgreSQL replica figures for BENCHMARKS.md: write -> visible on another
# replica, write throughput with 1 and 2 writing replicas (and fjall in the
# same run), checks on 1 vs 2 replicas, a replica's start-up. Starts its own
# throwaway PostgreSQL (tests/it/pg_support.rs); the logic is
# tests/it/postgres.rs `bench_replicas`.
#
#   scripts/bench-replicas.sh [--users 100000,1000000]
set -euo pipefail
cd "$(dirname "$0")/.."
users=100000
while [ $# -gt 0 ]; do
  case "$1" in
    --users) users="$2"; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
HOLDFAST_BENCH_USERS="$users" \
  exec cargo test --release --test it -- --ignored --exact --nocapture postgres::bench_replicas
