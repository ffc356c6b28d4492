#!/usr/bin/env bash
# Benchmark (issue 16, must-show 3): the spend routes on a large log. Seeds 1,000,000 request_log rows over the last
# 30 days, and the usage_daily rollups the log writer would have made of them, straight into a SQLite file and into
# a Postgres schema of its own (127.0.0.1:5432, db `test`, user `postgres`; dropped after), starts the release
# gateway on each, and prints the latency (median and p99 of 20 calls, after one warm-up call) of:
#   /spend/logs first page; /spend/logs filtered by key; by team; one request by its id (no index on ids: found
#   through its start, which a tollgate id names);
#   /global/spend/report grouped by team, and by model, over 30 days.
# Target: <= 100 ms each. Also prints each backend's query plans (EXPLAIN) for the statements the routes run.
#
# The data: 200 keys in 20 teams (one user per 4 keys), 5 end users per key on 4 requests in 5 (none on the 5th),
# 5 model groups (each key calls 2) on 3 providers, 5% errors, 1 request in 50 unpriced.
#
# Usage: tests/bench/spend_reports.sh [rows, default 1000000]
#   PG_URL overrides the Postgres base URL; BACKENDS="sqlite" (or "postgres") runs one; KEEP_WORK=1 keeps the files.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
rows="${1:-1000000}"
pg_base="${PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
for tool in sqlite3 psql curl python3; do
  command -v "$tool" >/dev/null || { echo "spend_reports.sh: needs $tool" >&2; exit 1; }
done
target="${CARGO_TARGET_DIR:-$root/target}/release"
echo "building the release gateway (cargo build --release -p tollgate --bin tollgate)" >&2
cargo build --release -q -p tollgate --bin tollgate
work="$(mktemp -d /tmp/tollgate-spend.XXXXXX)"
# A copy: a shared target directory's binary may be replaced by another build while this runs.
cp "$target/tollgate" "$work/tollgate"
target="$work"
schema="bench_spend_$$"
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  psql -q "$pg_base" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  [ -n "${KEEP_WORK:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
master=sk-bench-spend-master
now_ms=$(( $(date +%s) * 1000 ))
span_ms=$(( 30 * 86400 * 1000 - 60000 ))
# The request in the middle of the log, by its id.
one_n=$(( rows / 2 ))
one_id=$(printf '%012x7000%016x' $(( now_ms - one_n * span_ms / rows )) "$one_n")

# One row per n in 1..rows, the newest first; every expression is plain SQL both databases run.
columns="request_id, started_at_ms, first_byte_at_ms, ended_at_ms, key_hash, key_alias, team_id, user_id, end_user,
  model_group, deployment, provider, api_base, route, streamed, status, error_class, error_message, prompt_tokens,
  completion_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_nanos, accounting, attempts,
  fallback, tags, client_ip"
# A row's start, and its request id: a UUIDv7 in simple form whose first 48 bits are that start (as tollgate's).
started_sql() { echo "($now_ms - CAST($1 AS BIGINT) * $span_ms / $rows)"; }
select_row() { # $1: the SQL expression of n; $2: lpad function spelling; $3: boolean true/false spelling; $4: tags; $5: request id
  local n="$1"
  cat <<SQL
  $5,
  $now_ms - CAST($n AS BIGINT) * $span_ms / $rows,
  $now_ms - CAST($n AS BIGINT) * $span_ms / $rows + 300,
  $now_ms - CAST($n AS BIGINT) * $span_ms / $rows + 900,
  $2,
  'key-' || CAST($n % 200 AS TEXT),
  'team-' || CAST($n % 20 AS TEXT),
  'user-' || CAST($n % 50 AS TEXT),
  CASE WHEN $n % 5 = 0 THEN NULL ELSE 'eu-' || CAST(($n % 200) * 5 + $n % 7 % 5 AS TEXT) END,
  'model-' || CAST(($n % 200 + $n % 2) % 5 AS TEXT),
  'model-' || CAST(($n % 200 + $n % 2) % 5 AS TEXT) || '#0',
  CASE ($n % 200 + $n % 2) % 5 WHEN 0 THEN 'openai' WHEN 1 THEN 'openai' WHEN 2 THEN 'anthropic' WHEN 3 THEN 'anthropic' ELSE 'bedrock' END,
  'https://api.example.com',
  '/v1/chat/completions',
  $3,
  CASE WHEN $n % 20 = 0 THEN 500 ELSE 200 END,
  CASE WHEN $n % 20 = 0 THEN 'upstream_5xx' ELSE NULL END,
  CASE WHEN $n % 20 = 0 THEN 'upstream answered 500' ELSE NULL END,
  100 + $n % 900, 20 + $n % 300, 0, 0, 0,
  CASE WHEN $n % 50 = 7 THEN NULL ELSE (100 + $n % 900) * 150 + (20 + $n % 300) * 600 END,
  CASE WHEN $n % 50 = 7 THEN 'unpriced' ELSE 'exact' END,
  1, NULL, $4, '10.0.0.1'
SQL
}
rollup_sql="INSERT INTO usage_daily (day, key_hash, team_id, user_id, end_user, model_group, provider, status_class,
  requests, prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_nanos,
  unpriced_requests)
  SELECT started_at_ms / 86400000, COALESCE(key_hash, ''), COALESCE(team_id, ''), COALESCE(user_id, ''),
    COALESCE(end_user, ''), model_group, COALESCE(provider, ''), CASE WHEN status < 400 THEN 'ok' ELSE 'error' END,
    COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens),
    SUM(reasoning_tokens), COALESCE(SUM(cost_nanos), 0), SUM(CASE WHEN cost_nanos IS NULL THEN 1 ELSE 0 END)
  FROM request_log GROUP BY 1, 2, 3, 4, 5, 6, 7, 8"

# The statements the routes run, for EXPLAIN (placeholders filled in).
key_hash_sql="printf('%064x', n % 200)"
explain_queries() { # $1: the key hash of key 0 as a SQL literal
  cat <<SQL
SELECT * FROM request_log ORDER BY started_at_ms DESC, id DESC LIMIT 51;
SELECT * FROM request_log WHERE key_hash = $1 ORDER BY started_at_ms DESC, id DESC LIMIT 51;
SELECT * FROM request_log WHERE team_id = 'team-3' ORDER BY started_at_ms DESC, id DESC LIMIT 51;
SELECT day, team_id, key_hash, model_group, SUM(requests), SUM(cost_nanos) FROM usage_daily WHERE day >= $(( now_ms / 86400000 - 29 )) AND day <= $(( now_ms / 86400000 )) GROUP BY day, team_id, key_hash, model_group;
SELECT model_group, SUM(requests), SUM(cost_nanos) FROM usage_daily WHERE day >= $(( now_ms / 86400000 - 29 )) AND day <= $(( now_ms / 86400000 )) GROUP BY model_group;
SQL
}

time_route() { # $1 base URL, $2 label, $3 path
  local samples=()
  curl -sf -o /dev/null -H "Authorization: Bearer $master" "$1$3" || { echo "$2: $3 failed" >&2; curl -s -H "Authorization: Bearer $master" "$1$3" >&2; return 1; }
  for _ in $(seq 1 20); do
    samples+=("$(curl -sf -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $master" "$1$3")")
  done
  python3 - "$2" "${samples[@]}" <<'PY'
import math, statistics, sys
label, xs = sys.argv[1], sorted(float(x) * 1000 for x in sys.argv[2:])
p99 = xs[min(len(xs) - 1, math.ceil(0.99 * len(xs)) - 1)]
mark = "ok" if p99 <= 100 else "MISSED (target 100 ms)"
print(f"  {label:<46} median {statistics.median(xs):7.1f} ms   p99 {p99:7.1f} ms   {mark}")
PY
}

run_backend() { # $1 name, $2 database URL
  local port url size
  port="$(free_port)"
  url="http://127.0.0.1:$port"
  printf 'model_list:\n  - {model_name: m, litellm_params: {model: mock/m}}\ngeneral_settings: {master_key: %s}\ntollgate: {log_journal_dir: %s}\n' \
    "$master" "$work/$1.journal" >"$work/$1.yaml"
  env -u RUST_LOG DATABASE_URL="$2" "$target/tollgate" --config "$work/$1.yaml" --host 127.0.0.1 --port "$port" \
    --workers 2 >"$work/$1.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do curl -sf "$url/health/readiness" >/dev/null && break; sleep 0.1; done
  local key0; key0=$(printf '%064x' 0)
  echo "$1: $rows log rows, $3 rollup rows"
  time_route "$url" "/spend/logs first page (50 rows)" "/spend/logs"
  time_route "$url" "/spend/logs?api_key=<hash> (one key's)" "/spend/logs?api_key=$key0"
  time_route "$url" "/spend/logs?team_id=team-3" "/spend/logs?team_id=team-3"
  curl -sf -H "Authorization: Bearer $master" "$url/spend/logs?request_id=$one_id" | grep -q "$one_id" \
    || { echo "$1: /spend/logs?request_id=$one_id did not find the request" >&2; return 1; }
  time_route "$url" "/spend/logs?request_id=<one request's id>" "/spend/logs?request_id=$one_id"
  time_route "$url" "/global/spend/report group_by=team, 30 days" "/global/spend/report?group_by=team"
  time_route "$url" "/global/spend/report group_by=model, 30 days" "/global/spend/report?group_by=model"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  pid=""
}

backends="${BACKENDS:-sqlite postgres}"
# SQLite: the gateway's own schema (tollgate migrate), then the rows in one transaction.
db="$work/spend.db"
if [[ " $backends " == *" sqlite "* ]]; then
echo "seeding SQLite ($rows rows)" >&2
printf 'general_settings: {database_url: "sqlite://%s?mode=rwc"}\n' "$db" >"$work/migrate.yaml"
"$target/tollgate" migrate --config "$work/migrate.yaml" >/dev/null
t0=$(date +%s)
sqlite3 "$db" <<SQL
PRAGMA journal_mode=WAL;
BEGIN;
WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < $rows)
INSERT INTO request_log ($columns) SELECT $(select_row n "$key_hash_sql" "n % 2" "'[]'" "printf('%012x7000%016x', $(started_sql n), n)") FROM s;
$rollup_sql;
COMMIT;
ANALYZE;
SQL
echo "  seeded in $(( $(date +%s) - t0 )) s" >&2
sqlite_rollups=$(sqlite3 "$db" "SELECT COUNT(*) FROM usage_daily")
echo "SQLite query plans:"
explain_queries "'$(printf '%064x' 0)'" | while IFS= read -r q; do
  echo "  $q" | cut -c1-150
  sqlite3 "$db" "EXPLAIN QUERY PLAN $q" | sed 's/^/      /'
done
run_backend sqlite "sqlite://$db?mode=rwc" "$sqlite_rollups"
fi
[[ " $backends " == *" postgres "* ]] || exit 0

# Postgres: a schema of its own.
echo "seeding Postgres schema $schema ($rows rows)" >&2
psql -q "$pg_base" -c "CREATE SCHEMA $schema" >/dev/null
pg_url="$pg_base?options[search_path]=$schema"
printf 'general_settings: {database_url: "%s"}\n' "$pg_url" >"$work/migrate-pg.yaml"
"$target/tollgate" migrate --config "$work/migrate-pg.yaml" >/dev/null
t0=$(date +%s)
psql -q "$pg_base" -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET search_path TO $schema;
INSERT INTO request_log ($columns) SELECT $(select_row n "lpad(to_hex(n % 200), 64, '0')" "n % 2 = 1" "'[]'::json" "lpad(to_hex($(started_sql n)), 12, '0') || '7000' || lpad(to_hex(n), 16, '0')") FROM generate_series(1, $rows) AS s(n);
$rollup_sql;
VACUUM ANALYZE request_log;
VACUUM ANALYZE usage_daily;
SQL
echo "  seeded in $(( $(date +%s) - t0 )) s" >&2
pg_rollups=$(psql -tA "$pg_base" -c "SELECT COUNT(*) FROM $schema.usage_daily")
echo "Postgres query plans:"
explain_queries "'$(printf '%064x' 0)'" | while IFS= read -r q; do
  echo "  $q" | cut -c1-150
  psql -tA "$pg_base" -c "SET search_path TO $schema; EXPLAIN $q" | sed 's/^/      /'
done
run_backend postgres "$pg_url" "$pg_rollups"
echo "target (issue 16, must-show 3): <= 100 ms each"
