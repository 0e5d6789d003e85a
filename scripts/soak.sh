#!/usr/bin/env bash
# Soak: the release server on a generated tenant, a mixed load of checks and
# writes at a share of the measured maximum, resident memory sampled
# throughout. Not part of CI.
#
#   scripts/soak.sh [--minutes 10] [--users 100000] [--connections 8]
#                   [--write-ratio 0.05] [--load 0.8] [--calibrate 20] [--id-pool 5000]
#
# 1. builds `holdfast` and tools/loadgen (std only) in release mode;
# 2. `holdfast bench gen` writes policy.yaml + queries.jsonl (checks with the
#    decision each must get), `holdfast serve --policy` loads it (fsync on);
# 3. measures the maximum (`--rate 0` for --calibrate seconds), then runs
#    --minutes at --load × that rate, printing throughput, p50/p99/p999,
#    errors, wrong decisions and the server's RSS at start and end.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=10 users=100000 connections=8 write_ratio=0.05 load=0.8 calibrate=20 id_pool=5000
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --users) users="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --write-ratio) write_ratio="$2"; shift 2 ;;
    --load) load="$2"; shift 2 ;;
    --calibrate) calibrate="$2"; shift 2 ;;
    --id-pool) id_pool="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

cargo build --release --bin holdfast
cargo build --release --manifest-path tools/loadgen/Cargo.toml
hf=target/release/holdfast
lg=tools/loadgen/target/release/holdfast-loadgen

work=$(mktemp -d -t holdfast-soak.XXXXXX)
key="soak-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
echo "work dir: $work"
"$hf" bench gen --users "$users" --queries 20000 --out "$work/gen"

HOLDFAST_API_KEY="$key" RUST_LOG=warn "$hf" serve --data "$work/data" --listen 127.0.0.1:0 \
  --policy "$work/gen/policy.yaml" 2> "$work/server.log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  grep -q "listening on http://" "$work/server.log" && break
  kill -0 $pid 2>/dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.2
done
addr=$(sed -n 's/.*listening on http:\/\/\([^ ]*\).*/\1/p' "$work/server.log" | head -1)
rss() { awk '/VmRSS/{print $2}' "/proc/$pid/status"; }
echo "server pid $pid on $addr; RSS after load: $(rss) kB"

run() { "$lg" --addr "$addr" --key "$key" --tenant bench --queries "$work/gen/queries.jsonl" \
  --connections "$connections" --write-ratio "$write_ratio" --id-pool "$id_pool" "$@"; }

echo "== calibrating: as fast as it goes for ${calibrate}s"
max=$(run --rate 0 --duration "$calibrate" --report-every 5 | tee /dev/stderr | sed -n 's/^RESULT rps=\([0-9]*\).*/\1/p')
rate=$(awk -v m="$max" -v l="$load" 'BEGIN { printf "%d", m * l }')
echo "== maximum ${max} req/s; soaking at ${rate} req/s (${load} x) for ${minutes} min"

rss_start=$(rss)
(while kill -0 $pid 2>/dev/null; do echo "$(date +%T) rss_kb=$(rss)"; sleep 30; done) > "$work/rss.log" 2>/dev/null &
sampler=$!
start=$(date +%s)
run --rate "$rate" --duration $((minutes * 60)) --report-every 30 | tee "$work/soak.txt"
rss_end=$(rss)
kill $sampler 2>/dev/null || true
rss_max=$(awk -F= '{ if ($2 > m) m = $2 } END { print m }' "$work/rss.log")

echo "== soak summary"
echo "duration:        $(( $(date +%s) - start )) s at target ${rate} req/s (${load} x max ${max})"
grep -v '^RESULT' "$work/soak.txt" | sed 's/^/  /'
echo "server RSS:      start ${rss_start} kB, end ${rss_end} kB, max sampled ${rss_max} kB"
echo "RSS samples:     $work/rss.log"
kill -TERM $pid; wait $pid 2>/dev/null || true
trap - EXIT
grep -q "errors=0 " "$work/soak.txt" && grep -q "wrong=0 " "$work/soak.txt" || { echo "errors or wrong decisions"; exit 1; }
