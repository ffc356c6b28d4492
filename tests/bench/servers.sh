# Servers the benchmarks start and measure, shared so that every script compares against the same fake upstream
# and the same nginx (sourced, not run). The caller sets `work` (a scratch directory), `target` (the release
# binaries), `cpu_upstream` and `cpu_proxy` (the CPUs they are pinned to), `NGINX` (the binary) and `pids` (an
# array the started processes are added to), and defines `die MESSAGE`.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url
  local _
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.1
  done
  die "timed out waiting for $1"
}

# The address a fake binary prints as `listening on http://HOST:PORT` in FILE (its stdout), once it has (5 s at most).
announced() {
  local _ address
  for _ in $(seq 1 100); do
    address="$(sed -n 's/^listening on //p' "$1" 2>/dev/null | head -1)"
    [[ -n "$address" ]] && { echo "$address"; return 0; }
    sleep 0.05
  done
  return 1
}

start_upstream() {
  taskset -c "$cpu_upstream" "$target/fake-upstream" --host 127.0.0.1 --port 0 --workers 1 >"$work/upstream.out" 2>&1 &
  upstream_pid=$!
  pids+=("$upstream_pid")
  upstream="$(announced "$work/upstream.out")" || die "fake-upstream did not print 'listening on ...'"
}

start_nginx() {
  nginx_port="$(free_port)"
  nginx_stream_port="$(free_port)"
  cat >"$work/nginx.conf" <<CONF
worker_processes 1;
daemon on;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx-body;
  proxy_temp_path $work/nginx-proxy;
  fastcgi_temp_path $work/nginx-fastcgi;
  uwsgi_temp_path $work/nginx-uwsgi;
  scgi_temp_path $work/nginx-scgi;
  upstream upstream { server ${upstream#http://}; keepalive 64; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
  # The same, for streams: without buffering, nginx passes each event on as it arrives (tcp_nodelay is on by
  # default). A server of its own so that the non-streaming figures keep nginx's default buffering.
  server {
    listen 127.0.0.1:$nginx_stream_port;
    location / {
      proxy_pass http://upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
CONF
  taskset -c "$cpu_proxy" "$NGINX" -c "$work/nginx.conf" -p "$work" -e "$work/nginx-error.log" ||
    die "nginx did not start"
  wait_http "http://127.0.0.1:$nginx_port/"
  nginx_pid="$(pgrep -P "$(cat "$work/nginx.pid")" | head -1)" # the one worker does the proxying
  [[ -n "$nginx_pid" ]] || die "no nginx worker process"
}

# The least an actix-web proxy can do (`bare-proxy`, tests/fakes/src/bin/bare_proxy.rs): what the required stack
# costs before any of a gateway's own work, measured beside nginx and tollgate. Needs start_upstream first.
start_bare() {
  taskset -c "$cpu_proxy" "$target/bare-proxy" --host 127.0.0.1 --port 0 --upstream "${upstream#http://}" \
    >"$work/bare.out" 2>&1 &
  bare_pid=$!
  pids+=("$bare_pid")
  bare="$(announced "$work/bare.out")" || die "bare-proxy did not print 'listening on ...'"
}
