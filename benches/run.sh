#!/usr/bin/env bash
# Runs every benchmark and rewrites BENCHMARKS.md: the criterion benchmarks
# of the core, then the load benchmark of both examples on SQLite and
# PostgreSQL. Takes about 10 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then apt-get install -y -q wrk; else sudo apt-get install -y -q wrk; fi
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
fi

cargo bench -p jwt2fa-core --bench hot_paths -- --warm-up-time 1 --measurement-time 5
cargo bench --bench load
