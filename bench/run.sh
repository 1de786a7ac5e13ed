#!/usr/bin/env bash
# Gatehouse benchmark: Gatehouse vs nginx vs HAProxy, side by side on one machine, loopback
# (127.0.0.1) only, one worker each: L4 TCP (nginx `stream`, HAProxy mode tcp), TLS termination
# (same ECDSA P-256 certificate everywhere, plain TCP to the same backend), then HTTP proxying
# (nginx `http` + upstream keepalive, HAProxy mode http, Gatehouse HTTP/HTTPS listeners):
# HTTP/1.1 keep-alive, new connection per request, over TLS, and HTTP/2 (h2load); then UDP
# (nginx `stream` udp, Gatehouse UDP listener; HAProxy has no UDP) in front of a UDP echo server:
# packets/s and latency with udp-load (crates/gatehouse-testkit/src/bin/udp-load.rs).
#
# Usage: bench/run.sh [--quick] [--out FILE] [--help]
# Environment:
#   DURATION        seconds per measurement (default 10; --quick sets 3)
#   GATEHOUSE_BIN   use this gatehouse binary instead of `cargo build --release -p gatehouse`
#   SKIP_GATEHOUSE  1 = benchmark only the backend, nginx and HAProxy
#   SKIP_L4         1 = leave out the L4 TCP tests (keep-alive, new connection, iperf3)
#   SKIP_TLS        1 = leave out the TLS termination tests
#   SKIP_HTTP       1 = leave out the HTTP proxy tests
#   SKIP_UDP        1 = leave out the UDP tests
#   UDP_LOAD_BIN    use this udp-load binary instead of
#                   `cargo build --release -p gatehouse-testkit --bin udp-load`
#   UDP_FLOWS       UDP throughput test: client flows (default 50)
#   UDP_WINDOW      UDP throughput test: datagrams in flight per flow (default 8)
#   UDP_SIZE        UDP payload bytes, both UDP tests (default 64)
#   NGINX_UDP_RCVBUF nginx UDP `listen ... rcvbuf=` (default 4m, as Gatehouse's; empty = OS default)
#   BASE_PORT       first of the ports used (default 18080; uses BASE_PORT..BASE_PORT+45)
#   LOAD_CPU        CPU for load generators and backends (default: first allowed CPU)
#   PROXY_CPU       CPU for the proxy under test     (default: second allowed CPU)
#   WRK_CONNS       wrk connections (default 50)
#   STIME_PROCS     parallel `openssl s_time -new` clients for full TLS handshakes (default 3)
#   H2_CLIENTS      h2load connections (default 10)
#   H2_STREAMS      h2load concurrent streams per connection (default 10)
#   HAPROXY_SPLICE  1 = HAProxy `option splice-request` + `splice-response` (default: stock, no splice)
#   ROUNDS          repeat every measurement N times, report the median (default 1)
#   RETRIES         repeat a measurement disturbed by other work up to N times (default 2; --quick: 1)
#   NOISE_PCT       "disturbed" = other processes/steal used >= this % of a core (default 15)
#   KEEP_TMP        1 = keep the temp dir (configs, logs) after the run
# See bench/README.md.
set -euo pipefail
set -o errtrace
trap 'printf "[bench] ERROR: line %s: %s failed\n" "$LINENO" "$BASH_COMMAND" >&2' ERR

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)

QUICK=0
OUT_FILE="$SCRIPT_DIR/last-run.md"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --out) [[ $# -ge 2 ]] || { echo "--out needs a file" >&2; exit 2; }; OUT_FILE=$2; shift 2 ;;
    --out=*) OUT_FILE=${1#--out=}; shift ;;
    -h|--help) sed -n '2,37p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
done
if [[ $QUICK == 1 ]]; then DURATION=3; RETRIES=${RETRIES:-1}; fi
DURATION=${DURATION:-10}
DURATION=${DURATION%s}
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 1 ]] || { echo "DURATION must be a whole number of seconds" >&2; exit 2; }
SKIP_GATEHOUSE=${SKIP_GATEHOUSE:-0}
SKIP_L4=${SKIP_L4:-0}
SKIP_TLS=${SKIP_TLS:-0}
SKIP_HTTP=${SKIP_HTTP:-0}
SKIP_UDP=${SKIP_UDP:-0}
UDP_FLOWS=${UDP_FLOWS:-50}
UDP_WINDOW=${UDP_WINDOW:-8}
UDP_SIZE=${UDP_SIZE:-64}
NGINX_UDP_RCVBUF=${NGINX_UDP_RCVBUF-4m}
H2_CLIENTS=${H2_CLIENTS:-10}
H2_STREAMS=${H2_STREAMS:-10}
WRK_CONNS=${WRK_CONNS:-50}
STIME_PROCS=${STIME_PROCS:-3}
HAPROXY_SPLICE=${HAPROXY_SPLICE:-0}
KEEP_TMP=${KEEP_TMP:-0}
ROUNDS=${ROUNDS:-1}
RETRIES=${RETRIES:-2}
NOISE_PCT=${NOISE_PCT:-15}
[[ $RETRIES =~ ^[0-9]+$ && $RETRIES -le 5 ]] || { echo "RETRIES must be 0..5" >&2; exit 2; }
[[ $NOISE_PCT =~ ^[0-9]+$ ]] || { echo "NOISE_PCT must be a whole number" >&2; exit 2; }
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 && $ROUNDS -le 20 ]] || { echo "ROUNDS must be 1..20" >&2; exit 2; }
[[ $H2_CLIENTS =~ ^[0-9]+$ && $H2_CLIENTS -ge 1 && $H2_STREAMS =~ ^[0-9]+$ && $H2_STREAMS -ge 1 ]] || { echo "H2_CLIENTS and H2_STREAMS must be whole numbers >= 1" >&2; exit 2; }
[[ $STIME_PROCS =~ ^[0-9]+$ && $STIME_PROCS -ge 1 && $STIME_PROCS -le 16 ]] || { echo "STIME_PROCS must be 1..16" >&2; exit 2; }
[[ $UDP_FLOWS =~ ^[0-9]+$ && $UDP_FLOWS -ge 1 && $UDP_FLOWS -le 1000 && $UDP_WINDOW =~ ^[0-9]+$ && $UDP_WINDOW -ge 1 && $UDP_WINDOW -le 4096 ]] || { echo "UDP_FLOWS must be 1..1000 and UDP_WINDOW 1..4096" >&2; exit 2; }
[[ $UDP_SIZE =~ ^[0-9]+$ && $UDP_SIZE -ge 20 && $UDP_SIZE -le 65507 ]] || { echo "UDP_SIZE must be 20..65507" >&2; exit 2; }
[[ -z $NGINX_UDP_RCVBUF || $NGINX_UDP_RCVBUF =~ ^[0-9]+[kKmM]?$ ]] || { echo "NGINX_UDP_RCVBUF must be a size like 4m, or empty" >&2; exit 2; }
HOST=127.0.0.1   # never anything else

# ---------------------------------------------------------------- ports
BASE_PORT=${BASE_PORT:-18080}
P_BACKEND=$BASE_PORT                 # nginx HTTP backend
P_IPERF=$((BASE_PORT + 1))           # iperf3 -s backend
P_NGINX=$((BASE_PORT + 20));     P_NGINX_IPERF=$((BASE_PORT + 21));     P_NGINX_TLS=$((BASE_PORT + 22))
P_HAPROXY=$((BASE_PORT + 30));   P_HAPROXY_IPERF=$((BASE_PORT + 31));   P_HAPROXY_TLS=$((BASE_PORT + 32))
P_GATEHOUSE=$((BASE_PORT + 40)); P_GATEHOUSE_IPERF=$((BASE_PORT + 41)); P_GATEHOUSE_TLS=$((BASE_PORT + 42))
# HTTP proxying (layer 7): plain HTTP port and HTTPS port (HTTP/1.1 and h2 by ALPN) per proxy
P_NGINX_HTTP=$((BASE_PORT + 23));     P_NGINX_HTTPS=$((BASE_PORT + 24))
P_HAPROXY_HTTP=$((BASE_PORT + 33));   P_HAPROXY_HTTPS=$((BASE_PORT + 34))
P_GATEHOUSE_HTTP=$((BASE_PORT + 43)); P_GATEHOUSE_HTTPS=$((BASE_PORT + 44))
# UDP: the echo backend, nginx `stream` udp, Gatehouse's UDP listener (+35 stays free: HAProxy
# has no UDP). UDP ports, checked with `ss -u`; the numbers do not overlap the TCP ones anyway.
P_UDP_ECHO=$((BASE_PORT + 2)); P_NGINX_UDP=$((BASE_PORT + 25)); P_GATEHOUSE_UDP=$((BASE_PORT + 45))

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- tools
NGINX_STREAM_SO=""
find_stream_module() {
  local f so
  for f in /etc/nginx/modules-enabled/*stream*; do
    [[ -e $f ]] || continue
    so=$(sed -n 's/^[[:space:]]*load_module[[:space:]]\+\([^;[:space:]]*\).*/\1/p' "$f" | sed -n 1p)
    [[ -n $so && $so != /* ]] && so="/usr/share/nginx/$so"   # Debian's nginx prefix
    if [[ -n $so ]]; then so=$(readlink -f "$so" 2>/dev/null || true); fi
    if [[ -n $so && -f $so ]]; then NGINX_STREAM_SO=$so; return 0; fi
  done
  for so in /usr/lib/nginx/modules/ngx_stream_module.so /usr/lib64/nginx/modules/ngx_stream_module.so; do
    if [[ -f $so ]]; then NGINX_STREAM_SO=$so; return 0; fi
  done
  return 1
}
nginx_has_builtin_stream() { nginx -V 2>&1 | grep -q -- '--with-stream\([[:space:]]\|$\)'; }

ensure_tools() {
  local missing=0 c
  for c in nginx haproxy wrk iperf3 openssl h2load; do command -v "$c" >/dev/null 2>&1 || missing=1; done
  if [[ $missing == 0 ]] && ! find_stream_module && ! nginx_has_builtin_stream; then missing=1; fi
  if [[ $missing == 1 ]]; then
    log "installing nginx libnginx-mod-stream haproxy wrk iperf3 openssl nghttp2-client"
    local sudo=""
    [[ $(id -u) == 0 ]] || sudo="sudo"
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y nginx libnginx-mod-stream haproxy wrk iperf3 openssl nghttp2-client
  fi
  for c in nginx haproxy wrk iperf3 openssl h2load ss taskset awk; do
    command -v "$c" >/dev/null 2>&1 || die "required command not found: $c"
  done
  find_stream_module || nginx_has_builtin_stream || die "nginx stream module not found"
}

# ---------------------------------------------------------------- processes
TMP=""
PIDS=()
LOAD_PIDS=()   # load clients running in the background right now (openssl s_time)
cleanup() {
  local rc=$? pid kids=() i
  trap - EXIT INT TERM
  for pid in "${LOAD_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    # remember children (nginx workers) before the master goes away
    if [[ -d /proc/$pid ]]; then
      kids+=($(cat /proc/"$pid"/task/*/children 2>/dev/null || true))
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for pid in "${PIDS[@]}" "${kids[@]}"; do
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ -n $TMP && -d $TMP ]]; then
    if [[ $rc != 0 || $KEEP_TMP == 1 ]]; then
      log "configs and logs kept in $TMP"
    else
      rm -rf "$TMP"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# port_listening PORT | udp:PORT : a TCP socket listens on PORT / a UDP socket is bound to PORT
port_listening() {
  if [[ $1 == udp:* ]]; then
    [[ -n $(ss -Hlun "sport = :${1#udp:}" 2>/dev/null) ]]
  else
    [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]
  fi
}

# start NAME CPU LOGFILE CMD... : run CMD in the foreground of a background job, pinned to CPU
LAST_PID=""
start() {
  local name=$1 cpu=$2 logf=$3; shift 3
  if [[ -n $cpu ]]; then
    taskset -c "$cpu" "$@" >"$logf" 2>&1 &
  else
    "$@" >"$logf" 2>&1 &
  fi
  LAST_PID=$!
  PIDS+=("$LAST_PID")
  log "started $name (pid $LAST_PID${cpu:+, cpu $cpu})"
}

# wait_ready NAME PID LOGFILE PORT... : bounded poll until every port listens (10 s)
wait_ready() {
  local name=$1 pid=$2 logf=$3; shift 3
  local i p ok
  for ((i = 0; i < 100; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name exited before becoming ready; last lines of $logf:"
      tail -n 20 "$logf" >&2 || true
      die "$name failed to start"
    fi
    ok=1
    for p in "$@"; do port_listening "$p" || { ok=0; break; }; done
    [[ $ok == 1 ]] && return 0
    sleep 0.1
  done
  tail -n 20 "$logf" >&2 || true
  die "$name not listening on port(s) $* after 10 s"
}

# check_http NAME PORT : one request through the path, expect the backend's "ok"
check_http() {
  local name=$1 port=$2 resp
  resp=$(timeout 5 bash -c "exec 3<>/dev/tcp/$HOST/$port && printf 'GET / HTTP/1.0\r\nHost: bench\r\n\r\n' >&3 && cat <&3" 2>/dev/null || true)
  [[ $resp == *" 200 "* && $resp == *ok* ]] || die "$name on $HOST:$port did not return the backend's 200 ok (got: ${resp:0:80})"
}

# tls_probe TARGET NAME PORT : one request over TLS (certificate verified against the bench CA
# for bench.test), then a second connection offering the first one's session. Sets
# TLS_INFO[TARGET] = "protocol, cipher, key exchange, resumption".
declare -A TLS_INFO=()
tls_probe() {
  local t=$1 name=$2 port=$3 out proto kx reused
  local -a sc=(openssl s_client -connect "$HOST:$port" -servername bench.test -CAfile "$TMP/tls/cert.pem"
               -verify_hostname bench.test -verify_return_error -ign_eof)
  out=$(printf 'GET / HTTP/1.0\r\nHost: bench\r\n\r\n' |
        timeout 5 "${sc[@]}" -sess_out "$TMP/tls/session-$t.pem" 2>&1 || true)
  echo "$out" >"$TMP/tls/probe-$t.txt"
  [[ $out == *"Verify return code: 0 (ok)"* && $out == *" 200 "* && $out == *$'\nok'* ]] \
    || die "$name (TLS) on $HOST:$port: no verified handshake with the bench certificate and 200 ok (see $TMP/tls/probe-$t.txt)"
  proto=$(awk '/^(New|Reused), / { sub(/,$/, "", $2); print $2 ", " $NF; exit }' <<<"$out")
  kx=$(awk -F': ' '/^Server Temp Key:/ { print $2; exit }' <<<"$out")
  out=$(printf 'GET / HTTP/1.0\r\nHost: bench\r\n\r\n' |
        timeout 5 "${sc[@]}" -sess_in "$TMP/tls/session-$t.pem" 2>&1 || true)
  echo "$out" >>"$TMP/tls/probe-$t.txt"
  if grep -q '^Reused, ' <<<"$out"; then reused="resumes sessions"; else reused="no resumption"; fi
  TLS_INFO[$t]="${proto:-?}, ${kx:-?}, $reused"
  log "  $name TLS: ${TLS_INFO[$t]}"
}

# process tree CPU ticks (utime+stime of pid and its direct children)
proc_ticks() {
  local pid=$1 p total=0 t
  for p in "$pid" $(cat /proc/"$pid"/task/*/children 2>/dev/null || true); do
    t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' /proc/"$p"/stat 2>/dev/null || echo 0)
    total=$((total + t))
  done
  echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)

# Interference from other work: "machine busy ticks steal_ticks ours_ticks" where ours = every
# daemon started here (with children) + everything this shell has waited for (wrk, iperf3 client).
snapshot() {
  local pid ours=0 busy
  for pid in "${PIDS[@]}"; do ours=$((ours + $(proc_ticks "$pid"))); done
  ours=$((ours + $(awk '{ sub(/^.*\) /, ""); print $14 + $15 }' /proc/$$/stat)))
  # user nice system irq softirq | steal
  busy=$(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8, $9; exit }' /proc/stat)
  echo "$busy $ours"
}
# other_pct SNAP0 SNAP1 NS0 NS1 -> "other% steal%" as % of one core (approximate)
other_pct() {
  local b0 s0 o0 b1 s1 o1
  read -r b0 s0 o0 <<<"$1"; read -r b1 s1 o1 <<<"$2"
  awk -v b=$((b1 - b0)) -v st=$((s1 - s0)) -v o=$((o1 - o0)) -v hz="$CLK_TCK" -v ns=$(($4 - $3)) \
    'BEGIN { x = b - o; if (x < 0) x = 0; w = hz * ns / 1e9; printf "%.0f %.0f", 100 * x / w, 100 * st / w }'
}

# ---------------------------------------------------------------- measurement
to_ms() { # wrk time like 512.00us / 1.23ms / 2.00s / 1.00m
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else print "NA" }'
}

# per-round results: RAW[<target>.<metric>] = "v1 v2 ..."; R = the summary over rounds
declare -A RAW=() R=()
OTHER_MAX=()
STAGED=()   # one measurement's "key value" pairs, committed once it is accepted
LAST_NOISE=0
stage() { STAGED+=("$1 $2"); }
commit() {
  local kv
  for kv in "${STAGED[@]}"; do RAW[${kv%% *}]+="${kv#* } "; done
  STAGED=()
}
cpu_pct() { # ticks0 ticks1 ns0 ns1
  awk -v d=$(($2 - $1)) -v hz="$CLK_TCK" -v ns=$(($4 - $3)) 'BEGIN { printf "%.0f", 100 * d / hz / (ns / 1e9) }'
}
# summary over rounds: median (errors and UDP datagram counts: sum); NA if any round is NA
summarize() {
  local k
  for k in "${!RAW[@]}"; do
    R[$k]=$(awk -v sum="$([[ $k == *.err || $k == *.lost || $k == *.sent ]] && echo 1 || echo 0)" '{
      n = NF; for (i = 1; i <= n; i++) { if ($i == "NA" || $i == "-") { print $i; exit } v[i] = $i + 0; s += v[i] }
      if (sum) { print s; exit }
      for (i = 2; i <= n; i++) { x = v[i]; j = i - 1; while (j >= 1 && v[j] > x) { v[j + 1] = v[j]; j-- } v[j + 1] = x }
      m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
      if (m >= 100 || m == int(m)) printf "%.0f\n", m; else printf "%.3g\n", m }' <<<"${RAW[$k]}")
  done
}

# test names in the "other work" warnings
declare -A KIND_LABEL=([ka]=keep-alive [nc]=new-conn [tp]=iperf3 [tka]=tls-keep-alive [ths]=tls-handshakes [tfull]=tls-full-handshakes
                       [hka]=http-keep-alive [hnc]=http-new-conn [hska]=https-keep-alive [h2]=http2
                       [ulat]=udp-latency [utp]=udp-throughput)

# run_wrk TARGET KIND PORT PROXYPID : KIND = ka (keep-alive) | nc (new connection per request)
#   | tka (keep-alive over TLS) | ths (new TLS connection per request)
#   | hka, hnc, hska: the same against the HTTP proxies (keep-alive, new connection, HTTPS keep-alive)
run_wrk() {
  local target=$1 kind=$2 port=$3 ppid=$4 out t0=0 t1=0 w0 w1 s0 s1 oth stl rps p99 errs non2xx cpu
  local -a extra=()
  local scheme=http
  [[ $kind == nc || $kind == ths || $kind == hnc ]] && extra=(-H 'Connection: close')
  [[ $kind == tka || $kind == ths || $kind == hska ]] && scheme=https
  [[ $ppid != - ]] && t0=$(proc_ticks "$ppid")
  s0=$(snapshot)
  w0=$(date +%s%N)
  out=$(taskset -c "$LOAD_CPU" timeout $((DURATION + 30)) \
        wrk -t1 -c"$WRK_CONNS" -d"${DURATION}s" --latency "${extra[@]}" "$scheme://$HOST:$port/" 2>&1) \
    || { log "wrk failed against $target:"; echo "$out" >&2; die "wrk failed"; }
  w1=$(date +%s%N)
  s1=$(snapshot)
  [[ $ppid != - ]] && t1=$(proc_ticks "$ppid")
  read -r oth stl <<<"$(other_pct "$s0" "$s1" "$w0" "$w1")"
  rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' <<<"$out")
  p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
  errs=$(awk '/Socket errors:/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }' <<<"$out")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' <<<"$out")
  rps=${rps:-NA}
  if [[ -n $p99 ]]; then p99=$(to_ms "$p99"); else p99=NA; fi
  errs=$(( ${errs:-0} + ${non2xx:-0} ))
  if [[ $ppid != - ]]; then cpu=$(cpu_pct "$t0" "$t1" "$w0" "$w1"); else cpu=-; fi
  STAGED=()
  stage "$target.$kind.rps" "$rps"; stage "$target.$kind.p99" "$p99"
  stage "$target.$kind.err" "$errs"; stage "$target.$kind.cpu" "$cpu"
  stage "$target.$kind.oth" "$oth"; stage "$target.$kind.stl" "$stl"
  LAST_NOISE="$oth $stl $target/${KIND_LABEL[$kind]}"
  echo "$out" >"$TMP/wrk-$target-$kind-round$ROUND.txt"
  log "  $target wrk ${KIND_LABEL[$kind]}: $rps req/s, p99 $p99 ms, errors $errs, proxy cpu $cpu%, other work ${oth}% (steal ${stl}%)"
}

# run_stime TARGET PORT PROXYPID : full TLS handshakes (no session offered), each followed by
# one request through to the backend: STIME_PROCS parallel `openssl s_time -new -www /`.
# s_time gives up at its first failed connection, so errors = clients that failed.
run_stime() {
  local target=$1 port=$2 ppid=$3 t0=0 t1=0 w0 w1 s0 s1 oth stl i n=0 k bpc errs=0 rps cpu f
  # s_time stops when time() passes start + DURATION, in whole seconds: start just after a
  # second boundary so that every client runs the full DURATION
  sleep "$(awk -v ns="$(date +%N)" 'BEGIN { printf "%.3f", (1e9 - ns) / 1e9 + 0.005 }')"
  [[ $ppid != - ]] && t0=$(proc_ticks "$ppid")
  s0=$(snapshot)
  w0=$(date +%s%N)
  LOAD_PIDS=()
  for ((i = 0; i < STIME_PROCS; i++)); do
    taskset -c "$LOAD_CPU" timeout $((DURATION + 30)) \
      openssl s_time -connect "$HOST:$port" -new -www / -time "$DURATION" \
      >"$TMP/stime-$target-round$ROUND-$i.txt" 2>&1 &
    LOAD_PIDS+=($!)
  done
  for i in "${!LOAD_PIDS[@]}"; do
    wait "${LOAD_PIDS[$i]}" || errs=$((errs + 1))
  done
  LOAD_PIDS=()
  w1=$(date +%s%N)
  s1=$(snapshot)
  [[ $ppid != - ]] && t1=$(proc_ticks "$ppid")
  read -r oth stl <<<"$(other_pct "$s0" "$s1" "$w0" "$w1")"
  for ((i = 0; i < STIME_PROCS; i++)); do
    f="$TMP/stime-$target-round$ROUND-$i.txt"
    k=""; bpc=""
    read -r k bpc < <(awk '/connections in .* real seconds/ { print $1, $(NF - 4) }' "$f") || true
    n=$((n + ${k:-0}))
    # every connection must have carried the backend's response ("200 OK" headers + "ok")
    if [[ -z ${k:-} || -z ${bpc:-} || ${bpc:-0} -lt 20 ]]; then
      errs=$((errs + 1)); log "  s_time client $i against $target: no result or no response; last lines:"
      tail -n 5 "$f" >&2 || true
    fi
  done
  rps=$(awk -v n="$n" -v ns=$((w1 - w0)) 'BEGIN { printf "%.0f", n / (ns / 1e9) }')
  if [[ $ppid != - ]]; then cpu=$(cpu_pct "$t0" "$t1" "$w0" "$w1"); else cpu=-; fi
  STAGED=()
  stage "$target.tfull.rps" "$rps"; stage "$target.tfull.err" "$errs"; stage "$target.tfull.cpu" "$cpu"
  stage "$target.tfull.oth" "$oth"; stage "$target.tfull.stl" "$stl"
  LAST_NOISE="$oth $stl $target/${KIND_LABEL[tfull]}"
  log "  $target s_time -new x$STIME_PROCS: $rps full handshakes/s, failed clients $errs, proxy cpu $cpu%, other work ${oth}% (steal ${stl}%)"
}

# run_h2load TARGET PORT PROXYPID : HTTP/2 over TLS (ALPN h2), H2_CLIENTS connections with
# H2_STREAMS concurrent streams each, for DURATION seconds. h2load reports no percentiles: it
# gives min / max / mean / sd of the time per request; the mean and max are kept.
run_h2load() {
  local target=$1 port=$2 ppid=$3 out t0=0 t1=0 w0 w1 s0 s1 oth stl rps mean max sd errs proto cpu
  [[ $ppid != - ]] && t0=$(proc_ticks "$ppid")
  s0=$(snapshot)
  w0=$(date +%s%N)
  out=$(taskset -c "$LOAD_CPU" timeout $((DURATION + 30)) \
        h2load -D "$DURATION" -c "$H2_CLIENTS" -m "$H2_STREAMS" "https://$HOST:$port/" 2>&1) \
    || { log "h2load failed against $target:"; echo "$out" >&2; die "h2load failed"; }
  w1=$(date +%s%N)
  s1=$(snapshot)
  [[ $ppid != - ]] && t1=$(proc_ticks "$ppid")
  read -r oth stl <<<"$(other_pct "$s0" "$s1" "$w0" "$w1")"
  echo "$out" >"$TMP/h2load-$target-round$ROUND.txt"
  proto=$(awk -F': ' '/^Application protocol:/ { print $2; exit }' <<<"$out")
  rps=$(awk '/^finished in / { gsub(/,/, ""); printf "%.0f", $4; exit }' <<<"$out")
  read -r mean max sd < <(awk '/^time for request:/ { print $6, $5, $7; exit }' <<<"$out") || true
  # failed requests (h2load counts errored, timed-out and 4xx/5xx ones as failed), plus 3xx
  errs=$(awk '/^requests:/ { gsub(/,/, ""); e += $10 }
              /^status codes:/ { gsub(/,/, ""); e += $5 } END { print e + 0 }' <<<"$out")
  rps=${rps:-NA}
  if [[ $proto != h2 ]]; then
    log "  h2load against $target negotiated '${proto:-nothing}', not h2; its figures are left out"
    rps=NA; errs=$((errs + 1))
  fi
  if [[ -n ${mean:-} ]]; then mean=$(to_ms "$mean"); max=$(to_ms "$max"); else mean=NA; max=NA; fi
  if [[ $ppid != - ]]; then cpu=$(cpu_pct "$t0" "$t1" "$w0" "$w1"); else cpu=-; fi
  STAGED=()
  stage "$target.h2.rps" "$rps"; stage "$target.h2.mean" "$mean"; stage "$target.h2.max" "$max"
  stage "$target.h2.err" "$errs"; stage "$target.h2.cpu" "$cpu"
  stage "$target.h2.oth" "$oth"; stage "$target.h2.stl" "$stl"
  LAST_NOISE="$oth $stl $target/${KIND_LABEL[h2]}"
  log "  $target h2load: $rps req/s, mean $mean ms, max $max ms, errors $errs, proxy cpu $cpu%, other work ${oth}% (steal ${stl}%)"
}

# run_iperf TARGET PORT PROXYPID
run_iperf() {
  local target=$1 port=$2 ppid=$3 out t0=0 t1=0 w0 w1 s0 s1 oth stl g cpu
  [[ $ppid != - ]] && t0=$(proc_ticks "$ppid")
  s0=$(snapshot)
  w0=$(date +%s%N)
  out=$(taskset -c "$LOAD_CPU" timeout $((DURATION + 30)) \
        iperf3 -c "$HOST" -p "$port" -t "$DURATION" -O 1 -f g 2>&1) \
    || { log "iperf3 failed against $target:"; echo "$out" >&2; die "iperf3 failed"; }
  w1=$(date +%s%N)
  s1=$(snapshot)
  [[ $ppid != - ]] && t1=$(proc_ticks "$ppid")
  read -r oth stl <<<"$(other_pct "$s0" "$s1" "$w0" "$w1")"
  g=$(awk '/receiver/ { for (i = 1; i <= NF; i++) if ($i == "Gbits/sec") v = $(i - 1) } END { print v }' <<<"$out")
  g=${g:-NA}
  if [[ $ppid != - ]]; then cpu=$(cpu_pct "$t0" "$t1" "$w0" "$w1"); else cpu=-; fi
  STAGED=()
  stage "$target.gbps" "$g"; stage "$target.tp.cpu" "$cpu"
  stage "$target.tp.oth" "$oth"; stage "$target.tp.stl" "$stl"
  LAST_NOISE="$oth $stl $target/iperf3"
  echo "$out" >"$TMP/iperf-$target-round$ROUND.txt"
  log "  $target iperf3: $g Gbit/s, proxy cpu $cpu%, other work ${oth}% (steal ${stl}%)"
}

# udp_field KEY OUTPUT : KEY's value in udp-load's result line
#   (pps=.. p50_us=.. p99_us=.. p999_us=.. max_us=.. sent=.. received=.. lost=.. late=.. errors=..)
udp_field() {
  awk -v k="$1" '/^pps=/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' <<<"$2"
}

# run_udp TARGET KIND PORT PROXYPID : KIND = ulat (1 flow, 1 datagram in flight: latency)
#   | utp (UDP_FLOWS flows x UDP_WINDOW datagrams in flight: packets/s). udp-load runs for
#   DURATION + 0.5 s and leaves the first 0.5 s (flow setup) out of pps and latencies.
run_udp() {
  local target=$1 kind=$2 port=$3 ppid=$4 out t0=0 t1=0 w0 w1 s0 s1 oth stl cpu flows=1 window=1
  local pps p50 p99 max sent lost errs
  [[ $kind == utp ]] && { flows=$UDP_FLOWS; window=$UDP_WINDOW; }
  [[ $ppid != - ]] && t0=$(proc_ticks "$ppid")
  s0=$(snapshot)
  w0=$(date +%s%N)
  out=$(taskset -c "$LOAD_CPU" timeout $((DURATION + 30)) \
        "$UDP_LOAD" run --target "$HOST:$port" --flows "$flows" --window "$window" \
        --size "$UDP_SIZE" --warmup 0.5 --duration "$DURATION.5" 2>&1) \
    || { log "udp-load failed against $target:"; echo "$out" >&2; die "udp-load failed"; }
  w1=$(date +%s%N)
  s1=$(snapshot)
  [[ $ppid != - ]] && t1=$(proc_ticks "$ppid")
  read -r oth stl <<<"$(other_pct "$s0" "$s1" "$w0" "$w1")"
  echo "$out" >"$TMP/udp-$target-$kind-round$ROUND.txt"
  pps=$(udp_field pps "$out"); p50=$(udp_field p50_us "$out"); p99=$(udp_field p99_us "$out")
  max=$(udp_field max_us "$out"); sent=$(udp_field sent "$out"); lost=$(udp_field lost "$out")
  errs=$(udp_field errors "$out")
  if [[ $ppid != - ]]; then cpu=$(cpu_pct "$t0" "$t1" "$w0" "$w1"); else cpu=-; fi
  STAGED=()
  stage "$target.$kind.pps" "${pps:-NA}"; stage "$target.$kind.p50" "${p50:-NA}"
  stage "$target.$kind.p99" "${p99:-NA}"; stage "$target.$kind.max" "${max:-NA}"
  stage "$target.$kind.sent" "${sent:-0}"; stage "$target.$kind.lost" "${lost:-0}"
  stage "$target.$kind.err" "${errs:-0}"; stage "$target.$kind.cpu" "$cpu"
  stage "$target.$kind.oth" "$oth"; stage "$target.$kind.stl" "$stl"
  LAST_NOISE="$oth $stl $target/${KIND_LABEL[$kind]}"
  log "  $target udp-load ${flows}x$window: ${pps:-NA} pps, p50 ${p50:-NA} us, p99 ${p99:-NA} us, max ${max:-NA} us, lost ${lost:-?}/${sent:-?}, errors ${errs:-?}, proxy cpu $cpu%, other work ${oth}% (steal ${stl}%)"
}

# udp_probe NAME PORT : a short udp-load run through the path must get replies
udp_probe() {
  local name=$1 port=$2 out
  out=$(timeout 10 "$UDP_LOAD" run --target "$HOST:$port" --flows 1 --window 1 --size "$UDP_SIZE" \
        --warmup 0.1 --duration 0.5 --drain 0.2 --timeout 0.2 2>&1) \
    || die "$name (UDP) on $HOST:$port: no echo through it ($out)"
  log "  $name UDP: ${out%% sent=*}"
}

settle() { sleep 1; }

# measure RUN_FN ARGS... : run one measurement; if other work took >= NOISE_PCT of a core
# meanwhile, wait and repeat it (at most RETRIES more times), then keep the last attempt
measure() {
  local attempt oth stl
  for ((attempt = 0; attempt <= RETRIES; attempt++)); do
    "$@"
    settle
    read -r oth stl _ <<<"$LAST_NOISE"
    if ((oth + stl < NOISE_PCT)) || ((attempt == RETRIES)); then break; fi
    log "  other work took $((oth + stl))% of a core during that run; repeating it ($((attempt + 1))/$RETRIES)"
    sleep 2
  done
  commit
  OTHER_MAX+=("$LAST_NOISE")
}

# ================================================================ main
ensure_tools

# CPUs: load generators + backends on one, proxy under test alone on another
mapfile -t ALLOWED < <(awk '/^Cpus_allowed_list/ { print $2 }' /proc/self/status | tr ',' '\n' |
  awk -F- '{ if (NF == 2) { for (i = $1; i <= $2; i++) print i } else print $1 }')
if [[ ${#ALLOWED[@]} -ge 2 ]]; then
  LOAD_CPU=${LOAD_CPU:-${ALLOWED[0]}}
  PROXY_CPU=${PROXY_CPU:-${ALLOWED[1]}}
  CORE_NOTE="CPU $LOAD_CPU: wrk / iperf3 / udp-load client + nginx HTTP backend + iperf3 server + udp-load echo server; CPU $PROXY_CPU: the proxy under test, alone (as far as this script controls; other processes on the machine are not moved)."
else
  LOAD_CPU=${LOAD_CPU:-${ALLOWED[0]:-0}}
  PROXY_CPU=${PROXY_CPU:-$LOAD_CPU}
  CORE_NOTE="Only one CPU available: everything shares CPU $LOAD_CPU; figures are indicative only."
fi

# gatehouse binary
GH_BIN=""
if [[ $SKIP_GATEHOUSE != 1 ]]; then
  if [[ -n ${GATEHOUSE_BIN:-} ]]; then
    GH_BIN=$GATEHOUSE_BIN
  else
    log "building gatehouse (cargo build --release -p gatehouse)"
    (cd "$REPO_DIR" && cargo build --release -p gatehouse) \
      || die "cargo build failed (set SKIP_GATEHOUSE=1 to benchmark only nginx and HAProxy)"
    GH_BIN=$REPO_DIR/target/release/gatehouse
  fi
  [[ -x $GH_BIN ]] || die "gatehouse binary not executable: $GH_BIN"
fi

# udp-load: the UDP echo backend and load generator (crates/gatehouse-testkit/src/bin/udp-load.rs)
UDP_LOAD=""
if [[ $SKIP_UDP != 1 ]]; then
  if [[ -n ${UDP_LOAD_BIN:-} ]]; then
    UDP_LOAD=$UDP_LOAD_BIN
  else
    log "building udp-load (cargo build --release -p gatehouse-testkit --bin udp-load)"
    (cd "$REPO_DIR" && cargo build --release -p gatehouse-testkit --bin udp-load) \
      || die "cargo build of udp-load failed (set SKIP_UDP=1 to leave out the UDP tests)"
    UDP_LOAD=$REPO_DIR/target/release/udp-load
  fi
  [[ -x $UDP_LOAD ]] || die "udp-load binary not executable: $UDP_LOAD"
fi

TARGETS=(direct nginx haproxy)
[[ $SKIP_GATEHOUSE != 1 ]] && TARGETS+=(gatehouse)
TLS_TARGETS=()   # TLS termination: the proxies only (the backend speaks plain HTTP)
[[ $SKIP_TLS != 1 ]] && TLS_TARGETS=("${TARGETS[@]:1}")
HTTP_TARGETS=()  # HTTP proxying: the proxies only
[[ $SKIP_HTTP != 1 ]] && HTTP_TARGETS=("${TARGETS[@]:1}")
UDP_TARGETS=()   # UDP: the echo backend directly, nginx, Gatehouse (HAProxy has no UDP)
if [[ $SKIP_UDP != 1 ]]; then
  UDP_TARGETS=(direct nginx)
  [[ $SKIP_GATEHOUSE != 1 ]] && UDP_TARGETS+=(gatehouse)
fi
ALL_PORTS=("$P_BACKEND" "$P_IPERF" "$P_NGINX" "$P_NGINX_IPERF" "$P_HAPROXY" "$P_HAPROXY_IPERF")
[[ $SKIP_GATEHOUSE != 1 ]] && ALL_PORTS+=("$P_GATEHOUSE" "$P_GATEHOUSE_IPERF")
if [[ $SKIP_TLS != 1 ]]; then
  ALL_PORTS+=("$P_NGINX_TLS" "$P_HAPROXY_TLS")
  [[ $SKIP_GATEHOUSE != 1 ]] && ALL_PORTS+=("$P_GATEHOUSE_TLS")
fi
if [[ $SKIP_HTTP != 1 ]]; then
  ALL_PORTS+=("$P_NGINX_HTTP" "$P_NGINX_HTTPS" "$P_HAPROXY_HTTP" "$P_HAPROXY_HTTPS")
  [[ $SKIP_GATEHOUSE != 1 ]] && ALL_PORTS+=("$P_GATEHOUSE_HTTP" "$P_GATEHOUSE_HTTPS")
fi
if [[ $SKIP_UDP != 1 ]]; then
  ALL_PORTS+=("udp:$P_UDP_ECHO" "udp:$P_NGINX_UDP")
  [[ $SKIP_GATEHOUSE != 1 ]] && ALL_PORTS+=("udp:$P_GATEHOUSE_UDP")
fi
for p in "${ALL_PORTS[@]}"; do
  port_listening "$p" && die "port $p already in use (set BASE_PORT to move the range)"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench.XXXXXX")
TMP=$(readlink -f "$TMP")   # absolute: the configs name files in it
log "temp dir $TMP; duration ${DURATION}s; load cpu $LOAD_CPU, proxy cpu $PROXY_CPU"

# ---- TLS: one self-signed ECDSA P-256 certificate for bench.test, used by every proxy
NGINX_TLS_SERVER=""; HAPROXY_TLS_FRONTEND=""; GATEHOUSE_TLS_LISTENER=""
if [[ $SKIP_TLS != 1 || $SKIP_HTTP != 1 ]]; then   # the HTTPS tests use the same certificate
  mkdir -p "$TMP/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=bench.test \
    -addext subjectAltName=DNS:bench.test -days 2 \
    -keyout "$TMP/tls/key.pem" -out "$TMP/tls/cert.pem" >"$TMP/tls/openssl-req.log" 2>&1 \
    || { cat "$TMP/tls/openssl-req.log" >&2; die "could not make the TLS certificate"; }
  cat "$TMP/tls/cert.pem" "$TMP/tls/key.pem" >"$TMP/tls/combined.pem"   # HAProxy: cert + key in one file
fi
if [[ $SKIP_TLS != 1 ]]; then
  NGINX_TLS_SERVER="
    server {
        listen $HOST:$P_NGINX_TLS ssl backlog=4096;
        ssl_certificate $TMP/tls/cert.pem;
        ssl_certificate_key $TMP/tls/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        proxy_pass $HOST:$P_BACKEND;
    }"
  HAPROXY_TLS_FRONTEND="
frontend fe_tls
    bind $HOST:$P_HAPROXY_TLS ssl crt $TMP/tls/combined.pem
    default_backend be_http"
  GATEHOUSE_TLS_LISTENER="
      - name: tls
        port: $P_GATEHOUSE_TLS
        protocol: TLS
        tls:
          mode: Terminate
          certificates:
            - certFile: $TMP/tls/cert.pem
              keyFile: $TMP/tls/key.pem
        backend: web"
fi

# ---- HTTP proxying (layer 7): nginx `http` with an upstream keepalive pool, HAProxy `mode http`
# (http-reuse left at its default, safe), Gatehouse HTTP and HTTPS listeners; all to the same
# backend. The HTTPS ports offer h2 and http/1.1 by ALPN (wrk offers no ALPN: HTTP/1.1).
NGINX_HTTP_BLOCK=""; HAPROXY_HTTP_FRONTENDS=""; GATEHOUSE_HTTP_LISTENERS=""
if [[ $SKIP_HTTP != 1 ]]; then
  # nginx 1.25.1 and later: `http2 on;`; before that: `listen ... ssl http2`
  NGINX_VER=$( (nginx -v 2>&1 || true) | sed -n 's|^nginx version: nginx/\([0-9.]*\).*|\1|p')
  if awk -v v="$NGINX_VER" 'BEGIN { split(v, a, "."); exit !((a[1] * 1000 + a[2]) * 1000 + a[3] >= 1025001) }'; then
    NGINX_H2_LISTEN=""; NGINX_H2_ON="http2 on;"
  else
    NGINX_H2_LISTEN=" http2"; NGINX_H2_ON=""
  fi
  NGINX_HTTP_BLOCK="
http {
    # nginx's stock default is an access log line per request (combined format); it is kept,
    # written to the temp dir (the compiled-in path is the system's /var/log/nginx)
    access_log $TMP/nginx/access.log;
    # stock is 1000 requests per client connection, then nginx closes it (for HTTP/2 a GOAWAY,
    # after which h2load does not reconnect); the backend and the other proxies have no such cap
    keepalive_requests 100000000;
    client_body_temp_path $TMP/nginx/client_body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    upstream backend {
        server $HOST:$P_BACKEND;
        keepalive 64;
    }
    server {
        listen $HOST:$P_NGINX_HTTP backlog=4096;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }
    server {
        listen $HOST:$P_NGINX_HTTPS ssl$NGINX_H2_LISTEN backlog=4096;
        $NGINX_H2_ON
        ssl_certificate $TMP/tls/cert.pem;
        ssl_certificate_key $TMP/tls/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }
}"
  HAPROXY_HTTP_FRONTENDS="
frontend fe_l7
    mode http
    bind $HOST:$P_HAPROXY_HTTP
    default_backend be_l7

frontend fe_l7_tls
    mode http
    bind $HOST:$P_HAPROXY_HTTPS ssl crt $TMP/tls/combined.pem alpn h2,http/1.1
    default_backend be_l7

backend be_l7
    mode http
    server s1 $HOST:$P_BACKEND"
  GATEHOUSE_HTTP_LISTENERS="
      - name: web-http
        port: $P_GATEHOUSE_HTTP
        protocol: HTTP
        backend: web
      - name: web-https
        port: $P_GATEHOUSE_HTTPS
        protocol: HTTPS
        tls:
          certificates:
            - certFile: $TMP/tls/cert.pem
              keyFile: $TMP/tls/key.pem
        backend: web"
fi

# ---- UDP: nginx `stream` with `listen ... udp`, a Gatehouse `protocol: UDP` listener, both to
# the udp-load echo server. nginx: proxy_responses and proxy_requests are left at their defaults
# (no limit: any number of datagrams each way per session), so one client flow stays one session
# until proxy_timeout. Its listening socket gets the receive buffer Gatehouse gives its own (4 MiB,
# capped by net.core.rmem_max): with the OS default (about 208 KiB) it overflows now and then with
# 400 datagrams in flight, and every loss idles a window slot of udp-load for its 1 s timeout.
NGINX_UDP_SERVER=""; GATEHOUSE_UDP_LISTENER=""; GATEHOUSE_UDP_BACKEND=""
if [[ $SKIP_UDP != 1 ]]; then
  NGINX_UDP_SERVER="
    server {
        listen $HOST:$P_NGINX_UDP udp${NGINX_UDP_RCVBUF:+ rcvbuf=$NGINX_UDP_RCVBUF};
        proxy_pass $HOST:$P_UDP_ECHO;
        proxy_timeout 60s;
    }"
  GATEHOUSE_UDP_LISTENER="
      - name: udp
        port: $P_GATEHOUSE_UDP
        protocol: UDP
        backend: udp-echo
        udp: { idleTimeout: 60s, maxFlows: 10000 }"
  GATEHOUSE_UDP_BACKEND="
  - name: udp-echo
    endpoints: [$HOST:$P_UDP_ECHO]"
fi

LOAD_MODULE_LINE=""
if [[ -n $NGINX_STREAM_SO ]]; then LOAD_MODULE_LINE="load_module $NGINX_STREAM_SO;"; fi

nginx_common() { # $1 = prefix dir
  cat <<EOF
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
EOF
}

# ---- backend: nginx HTTP, 1 worker, fixed small response, long keep-alive
mkdir -p "$TMP/backend"
{ nginx_common "$TMP/backend"; cat <<EOF
worker_rlimit_nofile 10000;
http {
    access_log off;
    client_body_temp_path $TMP/backend/client_body;
    proxy_temp_path $TMP/backend/proxy;
    fastcgi_temp_path $TMP/backend/fastcgi;
    uwsgi_temp_path $TMP/backend/uwsgi;
    scgi_temp_path $TMP/backend/scgi;
    keepalive_timeout 65s;
    keepalive_requests 100000000;
    server {
        listen $HOST:$P_BACKEND backlog=4096;
        location / {
            default_type text/plain;
            return 200 "ok\n";
        }
    }
}
EOF
} >"$TMP/backend/nginx.conf"
nginx -t -q -p "$TMP/backend" -e "$TMP/backend/error.log" -c "$TMP/backend/nginx.conf" \
  || die "backend nginx config invalid"
start backend-nginx "$LOAD_CPU" "$TMP/backend/stderr.log" \
  nginx -p "$TMP/backend" -e "$TMP/backend/error.log" -c "$TMP/backend/nginx.conf" -g 'daemon off;'
wait_ready backend-nginx "$LAST_PID" "$TMP/backend/stderr.log" "$P_BACKEND"
PID_BACKEND=$LAST_PID

start backend-iperf3 "$LOAD_CPU" "$TMP/iperf3-server.log" iperf3 -s -B "$HOST" -p "$P_IPERF"
wait_ready backend-iperf3 "$LAST_PID" "$TMP/iperf3-server.log" "$P_IPERF"

if [[ $SKIP_UDP != 1 ]]; then
  start backend-udp-echo "$LOAD_CPU" "$TMP/udp-echo.log" "$UDP_LOAD" echo --listen "$HOST:$P_UDP_ECHO"
  wait_ready backend-udp-echo "$LAST_PID" "$TMP/udp-echo.log" "udp:$P_UDP_ECHO"
fi

# ---- nginx stream
mkdir -p "$TMP/nginx"
{ echo "$LOAD_MODULE_LINE"; nginx_common "$TMP/nginx"; cat <<EOF
worker_rlimit_nofile 10000;
stream {
    server {
        listen $HOST:$P_NGINX backlog=4096;
        proxy_pass $HOST:$P_BACKEND;
    }
    server {
        listen $HOST:$P_NGINX_IPERF;
        proxy_pass $HOST:$P_IPERF;
    }$NGINX_TLS_SERVER$NGINX_UDP_SERVER
}$NGINX_HTTP_BLOCK
EOF
} >"$TMP/nginx/nginx.conf"
nginx -t -q -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" \
  || die "nginx stream config invalid"
start nginx-stream "$PROXY_CPU" "$TMP/nginx/stderr.log" \
  nginx -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" -g 'daemon off;'
wait_ready nginx-stream "$LAST_PID" "$TMP/nginx/stderr.log" "$P_NGINX" "$P_NGINX_IPERF" \
  ${NGINX_TLS_SERVER:+"$P_NGINX_TLS"} ${NGINX_HTTP_BLOCK:+"$P_NGINX_HTTP" "$P_NGINX_HTTPS"} \
  ${NGINX_UDP_SERVER:+"udp:$P_NGINX_UDP"}
PID_NGINX=$LAST_PID

# ---- HAProxy mode tcp
mkdir -p "$TMP/haproxy"
SPLICE_LINE=""
if [[ $HAPROXY_SPLICE == 1 ]]; then SPLICE_LINE=$'    option splice-request\n    option splice-response'; fi
cat >"$TMP/haproxy/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
    pidfile $TMP/haproxy/haproxy.pid

defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
$SPLICE_LINE

frontend fe_http
    bind $HOST:$P_HAPROXY
    default_backend be_http

backend be_http
    server s1 $HOST:$P_BACKEND

frontend fe_iperf
    bind $HOST:$P_HAPROXY_IPERF
    default_backend be_iperf

backend be_iperf
    server s1 $HOST:$P_IPERF
$HAPROXY_TLS_FRONTEND
$HAPROXY_HTTP_FRONTENDS
EOF
haproxy -c -q -f "$TMP/haproxy/haproxy.cfg" || die "HAProxy config invalid"
start haproxy "$PROXY_CPU" "$TMP/haproxy/stderr.log" haproxy -db -f "$TMP/haproxy/haproxy.cfg"
wait_ready haproxy "$LAST_PID" "$TMP/haproxy/stderr.log" "$P_HAPROXY" "$P_HAPROXY_IPERF" \
  ${HAPROXY_TLS_FRONTEND:+"$P_HAPROXY_TLS"} ${HAPROXY_HTTP_FRONTENDS:+"$P_HAPROXY_HTTP" "$P_HAPROXY_HTTPS"}
PID_HAPROXY=$LAST_PID

# ---- Gatehouse
PID_GATEHOUSE=-
if [[ $SKIP_GATEHOUSE != 1 ]]; then
  mkdir -p "$TMP/gatehouse"
  cat >"$TMP/gatehouse/gatehouse.yaml" <<EOF
gateways:
  - name: bench
    addresses: [$HOST]
    listeners:
      - name: http
        port: $P_GATEHOUSE
        backend: web
      - name: iperf
        port: $P_GATEHOUSE_IPERF
        backend: iperf$GATEHOUSE_TLS_LISTENER$GATEHOUSE_HTTP_LISTENERS$GATEHOUSE_UDP_LISTENER
backends:
  - name: web
    endpoints: [$HOST:$P_BACKEND]
  - name: iperf
    endpoints: [$HOST:$P_IPERF]$GATEHOUSE_UDP_BACKEND
EOF
  "$GH_BIN" check -c "$TMP/gatehouse/gatehouse.yaml" >"$TMP/gatehouse/check.log" 2>&1 \
    || { cat "$TMP/gatehouse/check.log" >&2; die "gatehouse config invalid (SKIP_TLS=1 / SKIP_HTTP=1 / SKIP_UDP=1 leave out the TLS / HTTP / UDP listeners)"; }
  start gatehouse "$PROXY_CPU" "$TMP/gatehouse/stderr.log" \
    "$GH_BIN" run -c "$TMP/gatehouse/gatehouse.yaml" --threads 1
  wait_ready gatehouse "$LAST_PID" "$TMP/gatehouse/stderr.log" "$P_GATEHOUSE" "$P_GATEHOUSE_IPERF" \
    ${GATEHOUSE_TLS_LISTENER:+"$P_GATEHOUSE_TLS"} ${GATEHOUSE_HTTP_LISTENERS:+"$P_GATEHOUSE_HTTP" "$P_GATEHOUSE_HTTPS"} \
    ${GATEHOUSE_UDP_LISTENER:+"udp:$P_GATEHOUSE_UDP"}
  PID_GATEHOUSE=$LAST_PID
fi

declare -A HTTP_PORT=([direct]=$P_BACKEND [nginx]=$P_NGINX [haproxy]=$P_HAPROXY [gatehouse]=$P_GATEHOUSE)
declare -A IPERF_PORT=([direct]=$P_IPERF [nginx]=$P_NGINX_IPERF [haproxy]=$P_HAPROXY_IPERF [gatehouse]=$P_GATEHOUSE_IPERF)
declare -A TLS_PORT=([nginx]=$P_NGINX_TLS [haproxy]=$P_HAPROXY_TLS [gatehouse]=$P_GATEHOUSE_TLS)
declare -A L7_PORT=([nginx]=$P_NGINX_HTTP [haproxy]=$P_HAPROXY_HTTP [gatehouse]=$P_GATEHOUSE_HTTP)
declare -A L7S_PORT=([nginx]=$P_NGINX_HTTPS [haproxy]=$P_HAPROXY_HTTPS [gatehouse]=$P_GATEHOUSE_HTTPS)
declare -A L7_LABEL=([nginx]="nginx http" [haproxy]="HAProxy http" [gatehouse]="Gatehouse")
declare -A UDP_PORT=([direct]=$P_UDP_ECHO [nginx]=$P_NGINX_UDP [gatehouse]=$P_GATEHOUSE_UDP)
declare -A UDP_LABEL=([direct]="echo backend direct" [nginx]="nginx stream udp" [gatehouse]="Gatehouse")
declare -A PPID_OF=([direct]=- [nginx]=$PID_NGINX [haproxy]=$PID_HAPROXY [gatehouse]=$PID_GATEHOUSE)
declare -A LABEL=([direct]="backend direct" [nginx]="nginx stream" [haproxy]="HAProxy tcp" [gatehouse]="Gatehouse")

for t in "${TARGETS[@]}"; do check_http "${LABEL[$t]}" "${HTTP_PORT[$t]}"; done
for t in "${TLS_TARGETS[@]}"; do tls_probe "$t" "${LABEL[$t]}" "${TLS_PORT[$t]}"; done
# HTTP: a plain request, a verified HTTPS request (HTTP/1.0, no ALPN), and one HTTP/2 request
# (h2load, ALPN h2). A proxy that does not negotiate h2 is left out of the HTTP/2 test.
H2_TARGETS=(); H2_MISSING=""
for t in "${HTTP_TARGETS[@]}"; do
  check_http "${L7_LABEL[$t]}" "${L7_PORT[$t]}"
  tls_probe "$t.https" "${L7_LABEL[$t]} (HTTPS)" "${L7S_PORT[$t]}"
  out=$(timeout 10 h2load -n 1 -c 1 "https://$HOST:${L7S_PORT[$t]}/" 2>&1 || true)
  echo "$out" >"$TMP/h2load-probe-$t.txt"
  if grep -q '^Application protocol: h2$' <<<"$out" && grep -q '^status codes: 1 2xx' <<<"$out"; then
    H2_TARGETS+=("$t")
  else
    log "WARNING: ${L7_LABEL[$t]} did not answer an HTTP/2 request over ALPN h2 (see $TMP/h2load-probe-$t.txt); left out of the HTTP/2 test"
    H2_MISSING+="${H2_MISSING:+, }${L7_LABEL[$t]}"
  fi
done
for t in "${UDP_TARGETS[@]}"; do udp_probe "${UDP_LABEL[$t]}" "${UDP_PORT[$t]}"; done
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# how busy the machine is with other work right now (1 s sample of /proc/stat, all CPUs)
cpu_sample() { awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i; print t, $5 + $6; exit }' /proc/stat; }
read -r T0 I0 < <(cpu_sample); sleep 1; read -r T1 I1 < <(cpu_sample)
BUSY_BEFORE=$(awk -v t=$((T1 - T0)) -v i=$((I1 - I0)) 'BEGIN { printf "%.0f", t ? 100 * (t - i) / t : 0 }')
log "all paths answer; machine busy ${BUSY_BEFORE}% before measuring (load average $LOAD_BEFORE)"

# Each round runs every test against every target in turn (same order every round).
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
  if [[ $SKIP_L4 != 1 ]]; then
  log "round $ROUND/$ROUNDS: keep-alive: wrk -t1 -c$WRK_CONNS -d${DURATION}s --latency"
  for t in "${TARGETS[@]}"; do measure run_wrk "$t" ka "${HTTP_PORT[$t]}" "${PPID_OF[$t]}"; done
  log "round $ROUND/$ROUNDS: new connection per request: wrk ... -H 'Connection: close'"
  for t in "${TARGETS[@]}"; do measure run_wrk "$t" nc "${HTTP_PORT[$t]}" "${PPID_OF[$t]}"; done
  log "round $ROUND/$ROUNDS: throughput: iperf3 -c $HOST -t $DURATION -O 1 (one stream)"
  for t in "${TARGETS[@]}"; do measure run_iperf "$t" "${IPERF_PORT[$t]}" "${PPID_OF[$t]}"; done
  fi
  if [[ ${#HTTP_TARGETS[@]} -gt 0 ]]; then
    log "round $ROUND/$ROUNDS: HTTP proxy, HTTP/1.1 keep-alive: wrk -t1 -c$WRK_CONNS -d${DURATION}s --latency http://..."
    for t in "${HTTP_TARGETS[@]}"; do measure run_wrk "$t" hka "${L7_PORT[$t]}" "${PPID_OF[$t]}"; done
    log "round $ROUND/$ROUNDS: HTTP proxy, new connection per request: wrk ... -H 'Connection: close' http://..."
    for t in "${HTTP_TARGETS[@]}"; do measure run_wrk "$t" hnc "${L7_PORT[$t]}" "${PPID_OF[$t]}"; done
    log "round $ROUND/$ROUNDS: HTTP proxy, HTTPS keep-alive: wrk ... https://..."
    for t in "${HTTP_TARGETS[@]}"; do measure run_wrk "$t" hska "${L7S_PORT[$t]}" "${PPID_OF[$t]}"; done
    if [[ ${#H2_TARGETS[@]} -gt 0 ]]; then
      log "round $ROUND/$ROUNDS: HTTP proxy, HTTP/2: h2load -D $DURATION -c $H2_CLIENTS -m $H2_STREAMS https://..."
      for t in "${H2_TARGETS[@]}"; do measure run_h2load "$t" "${L7S_PORT[$t]}" "${PPID_OF[$t]}"; done
    fi
  fi
  if [[ ${#TLS_TARGETS[@]} -gt 0 ]]; then
    log "round $ROUND/$ROUNDS: TLS keep-alive: wrk -t1 -c$WRK_CONNS -d${DURATION}s --latency https://..."
    for t in "${TLS_TARGETS[@]}"; do measure run_wrk "$t" tka "${TLS_PORT[$t]}" "${PPID_OF[$t]}"; done
    log "round $ROUND/$ROUNDS: TLS handshake per request: wrk ... -H 'Connection: close' https://... (wrk resumes sessions)"
    for t in "${TLS_TARGETS[@]}"; do measure run_wrk "$t" ths "${TLS_PORT[$t]}" "${PPID_OF[$t]}"; done
    log "round $ROUND/$ROUNDS: full TLS handshakes: $STIME_PROCS x openssl s_time -new -www / -time $DURATION"
    for t in "${TLS_TARGETS[@]}"; do measure run_stime "$t" "${TLS_PORT[$t]}" "${PPID_OF[$t]}"; done
  fi
  if [[ ${#UDP_TARGETS[@]} -gt 0 ]]; then
    log "round $ROUND/$ROUNDS: UDP latency: udp-load, 1 flow, 1 datagram in flight, $UDP_SIZE bytes"
    for t in "${UDP_TARGETS[@]}"; do measure run_udp "$t" ulat "${UDP_PORT[$t]}" "${PPID_OF[$t]}"; done
    log "round $ROUND/$ROUNDS: UDP packets/s: udp-load, $UDP_FLOWS flows x $UDP_WINDOW in flight, $UDP_SIZE bytes"
    for t in "${UDP_TARGETS[@]}"; do measure run_udp "$t" utp "${UDP_PORT[$t]}" "${PPID_OF[$t]}"; done
  fi
done
summarize
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
# ratio higher-is-better: gatehouse / max(nginx, haproxy); lower-is-better: min(nginx, haproxy) / gatehouse
ratio_hi() { awk -v g="$1" -v a="$2" -v b="$3" 'BEGIN {
  if (g == "NA" || (a == "NA" && b == "NA")) { print "n/a"; exit }
  m = (a == "NA") ? b : (b == "NA") ? a : (a > b ? a : b); m += 0
  if (m == 0) { print "n/a"; exit } printf "%.2fx", g / m }'; }
ratio_lo() { awk -v g="$1" -v a="$2" -v b="$3" 'BEGIN {
  if (g == "NA" || (a == "NA" && b == "NA")) { print "n/a"; exit }
  m = (a == "NA") ? b : (b == "NA") ? a : (a < b ? a : b); m += 0; g += 0
  if (g == 0) { print "n/a"; exit } printf "%.2fx", m / g }'; }

HEAD=("target" "keep-alive req/s" "keep-alive p99 ms" "new-conn req/s" "new-conn p99 ms" "Gbit/s")
ROWS=()
DHEAD=("target" "CPU% ka" "CPU% nc" "CPU% iperf3" "ka req/s per core" "nc req/s per core" "Gbit/s per core" "wrk errors ka/nc" "other CPU% ka/nc/iperf3")
DROWS=()
# work per proxy CPU: req/s (or Gbit/s) divided by the proxy's busy fraction of one core
per_core() { awk -v v="$1" -v c="$2" -v f="$3" 'BEGIN {
  if (v == "NA" || c == "-" || c == "" || c + 0 == 0) { print "NA"; exit } printf f, v / (c / 100) }'; }
if [[ $SKIP_L4 != 1 ]]; then
row_of() { local t=$1
  printf '%s\t%s\t%s\t%s\t%s\t%s' "${LABEL[$t]}" "${R[$t.ka.rps]}" "${R[$t.ka.p99]}" \
    "${R[$t.nc.rps]}" "${R[$t.nc.p99]}" "${R[$t.gbps]}"; }
for t in "${TARGETS[@]}"; do ROWS+=("$(row_of "$t")"); done
if [[ $SKIP_GATEHOUSE != 1 ]]; then
  ROWS+=("$(printf 'Gatehouse ratio\t%s\t%s\t%s\t%s\t%s' \
    "$(ratio_hi "${R[gatehouse.ka.rps]}" "${R[nginx.ka.rps]}" "${R[haproxy.ka.rps]}")" \
    "$(ratio_lo "${R[gatehouse.ka.p99]}" "${R[nginx.ka.p99]}" "${R[haproxy.ka.p99]}")" \
    "$(ratio_hi "${R[gatehouse.nc.rps]}" "${R[nginx.nc.rps]}" "${R[haproxy.nc.rps]}")" \
    "$(ratio_lo "${R[gatehouse.nc.p99]}" "${R[nginx.nc.p99]}" "${R[haproxy.nc.p99]}")" \
    "$(ratio_hi "${R[gatehouse.gbps]}" "${R[nginx.gbps]}" "${R[haproxy.gbps]}")")")
fi
for t in "${TARGETS[@]}"; do
  R[$t.ka.eff]=$(per_core "${R[$t.ka.rps]}" "${R[$t.ka.cpu]}" "%.0f")
  R[$t.nc.eff]=$(per_core "${R[$t.nc.rps]}" "${R[$t.nc.cpu]}" "%.0f")
  R[$t.tp.eff]=$(per_core "${R[$t.gbps]}" "${R[$t.tp.cpu]}" "%.1f")
done
for t in "${TARGETS[@]}"; do
  DROWS+=("$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "${LABEL[$t]}" "${R[$t.ka.cpu]}" "${R[$t.nc.cpu]}" \
    "${R[$t.tp.cpu]}" "${R[$t.ka.eff]}" "${R[$t.nc.eff]}" "${R[$t.tp.eff]}" "${R[$t.ka.err]}/${R[$t.nc.err]}" \
    "${R[$t.ka.oth]}/${R[$t.nc.oth]}/${R[$t.tp.oth]}")")
done
if [[ $SKIP_GATEHOUSE != 1 ]]; then
  DROWS+=("$(printf 'Gatehouse ratio\t\t\t\t%s\t%s\t%s\t\t' \
    "$(ratio_hi "${R[gatehouse.ka.eff]}" "${R[nginx.ka.eff]}" "${R[haproxy.ka.eff]}")" \
    "$(ratio_hi "${R[gatehouse.nc.eff]}" "${R[nginx.nc.eff]}" "${R[haproxy.nc.eff]}")" \
    "$(ratio_hi "${R[gatehouse.tp.eff]}" "${R[nginx.tp.eff]}" "${R[haproxy.tp.eff]}")")")
fi
fi   # SKIP_L4

# HTTP tables (layer 7 proxying). Gatehouse / the better incumbent, as in the L4 table.
# hka = HTTP/1.1 keep-alive, hnc = new connection per request, hska = HTTPS keep-alive (HTTP/1.1),
# h2 = HTTP/2 over TLS (h2load: mean and max time per request, no percentiles).
HHEAD=("HTTP target" "h1 keep-alive req/s" "p99 ms" "h1 new-conn req/s" "p99 ms" "h1 HTTPS keep-alive req/s" "p99 ms" "h2 req/s" "h2 mean ms" "h2 max ms")
HDHEAD=("HTTP target" "CPU% ka" "CPU% nc" "CPU% https" "CPU% h2" "ka req/s per core" "nc req/s per core" "https req/s per core" "h2 req/s per core" "errors ka/nc/https/h2" "other CPU% ka/nc/https/h2")
HROWS=(); HDROWS=(); HTTP_VERDICTS=()
r() { echo "${R[$1]:-NA}"; }   # a figure, NA when that test did not run
if [[ ${#HTTP_TARGETS[@]} -gt 0 ]]; then
  for t in "${HTTP_TARGETS[@]}"; do
    for k in hka hnc hska h2; do R[$t.$k.eff]=$(per_core "$(r "$t.$k.rps")" "${R[$t.$k.cpu]:--}" "%.0f"); done
    HROWS+=("$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "${L7_LABEL[$t]}" \
      "$(r "$t.hka.rps")" "$(r "$t.hka.p99")" "$(r "$t.hnc.rps")" "$(r "$t.hnc.p99")" \
      "$(r "$t.hska.rps")" "$(r "$t.hska.p99")" "$(r "$t.h2.rps")" "$(r "$t.h2.mean")" "$(r "$t.h2.max")")")
    HDROWS+=("$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "${L7_LABEL[$t]}" \
      "${R[$t.hka.cpu]:--}" "${R[$t.hnc.cpu]:--}" "${R[$t.hska.cpu]:--}" "${R[$t.h2.cpu]:--}" \
      "${R[$t.hka.eff]}" "${R[$t.hnc.eff]}" "${R[$t.hska.eff]}" "${R[$t.h2.eff]}" \
      "${R[$t.hka.err]:--}/${R[$t.hnc.err]:--}/${R[$t.hska.err]:--}/${R[$t.h2.err]:--}" \
      "${R[$t.hka.oth]:--}/${R[$t.hnc.oth]:--}/${R[$t.hska.oth]:--}/${R[$t.h2.oth]:--}")")
  done
  if [[ $SKIP_GATEHOUSE != 1 ]]; then
    hr() { ratio_hi "$(r "gatehouse.$1")" "$(r "nginx.$1")" "$(r "haproxy.$1")"; }
    lr() { ratio_lo "$(r "gatehouse.$1")" "$(r "nginx.$1")" "$(r "haproxy.$1")"; }
    HROWS+=("$(printf 'Gatehouse / best\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' \
      "$(hr hka.rps)" "$(lr hka.p99)" "$(hr hnc.rps)" "$(lr hnc.p99)" "$(hr hska.rps)" "$(lr hska.p99)" \
      "$(hr h2.rps)" "$(lr h2.mean)" "$(lr h2.max)")")
    HDROWS+=("$(printf 'Gatehouse / best\t\t\t\t\t%s\t%s\t%s\t%s\t\t' \
      "$(hr hka.eff)" "$(hr hnc.eff)" "$(hr hska.eff)" "$(hr h2.eff)")")
    # target: HTTP proxy requests/s at least 1.1x the better incumbent, with p99 no worse
    # (HTTP/2: h2load's mean time per request stands in for p99)
    http_verdict() { awk -v a="${1%x}" -v l="${2%x}" -v c="${3%x}" 'BEGIN {
      if (a == "n/a" || l == "n/a") { print "n/a"; exit }
      lat = (l + 0 >= 1.0) ? "" : ", latency worse"
      if (a + 0 >= 1.1 && lat == "") print "met"
      else if (a + 0 >= 1.1) print "req/s met" lat ": not met"
      else if (c != "n/a" && c + 0 >= 1.1) print "met per proxy core only" lat
      else print "not met" lat }'; }
    for k in hka:"HTTP/1.1 keep-alive":p99 hnc:"HTTP/1.1 new connection per request":p99 hska:"HTTPS (HTTP/1.1) keep-alive":p99 h2:"HTTP/2 (h2load)":mean; do
      IFS=: read -r kind name lat <<<"$k"
      a=$(hr "$kind.rps"); l=$(lr "$kind.$lat"); c=$(hr "$kind.eff")
      HTTP_VERDICTS+=("$name: req/s $a (per proxy core $c), $([[ $lat == p99 ]] && echo p99 || echo 'mean latency') $l: $(http_verdict "$a" "$l" "$c")")
    done
  fi
fi

# TLS tables. Gatehouse is compared with each incumbent separately (DESIGN.md's TLS target is
# against nginx); tka = keep-alive, ths = wrk new connection per request (resumed handshakes
# where the server resumes), tfull = s_time -new (full handshakes).
THEAD=("TLS target" "keep-alive req/s" "keep-alive p99 ms" "handshakes/s (wrk)" "new-conn p99 ms" "full handshakes/s (s_time)")
TDHEAD=("TLS target" "CPU% ka" "CPU% hs" "CPU% full" "ka req/s per core" "hs/s per core" "full hs/s per core" "errors ka/hs/full" "other CPU% ka/hs/full")
TROWS=(); TDROWS=()
TLS_TARGET_LINE=""
if [[ ${#TLS_TARGETS[@]} -gt 0 ]]; then
  for t in "${TLS_TARGETS[@]}"; do
    R[$t.tka.eff]=$(per_core "${R[$t.tka.rps]}" "${R[$t.tka.cpu]}" "%.0f")
    R[$t.ths.eff]=$(per_core "${R[$t.ths.rps]}" "${R[$t.ths.cpu]}" "%.0f")
    R[$t.tfull.eff]=$(per_core "${R[$t.tfull.rps]}" "${R[$t.tfull.cpu]}" "%.0f")
    TROWS+=("$(printf '%s\t%s\t%s\t%s\t%s\t%s' "${LABEL[$t]}" "${R[$t.tka.rps]}" "${R[$t.tka.p99]}" \
      "${R[$t.ths.rps]}" "${R[$t.ths.p99]}" "${R[$t.tfull.rps]}")")
    TDROWS+=("$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "${LABEL[$t]}" "${R[$t.tka.cpu]}" "${R[$t.ths.cpu]}" \
      "${R[$t.tfull.cpu]}" "${R[$t.tka.eff]}" "${R[$t.ths.eff]}" "${R[$t.tfull.eff]}" \
      "${R[$t.tka.err]}/${R[$t.ths.err]}/${R[$t.tfull.err]}" "${R[$t.tka.oth]}/${R[$t.ths.oth]}/${R[$t.tfull.oth]}")")
  done
  if [[ $SKIP_GATEHOUSE != 1 ]]; then
    for i in nginx haproxy; do
      TROWS+=("$(printf 'Gatehouse / %s\t%s\t%s\t%s\t%s\t%s' "${LABEL[$i]}" \
        "$(ratio_hi "${R[gatehouse.tka.rps]}" "${R[$i.tka.rps]}" NA)" \
        "$(ratio_lo "${R[gatehouse.tka.p99]}" "${R[$i.tka.p99]}" NA)" \
        "$(ratio_hi "${R[gatehouse.ths.rps]}" "${R[$i.ths.rps]}" NA)" \
        "$(ratio_lo "${R[gatehouse.ths.p99]}" "${R[$i.ths.p99]}" NA)" \
        "$(ratio_hi "${R[gatehouse.tfull.rps]}" "${R[$i.tfull.rps]}" NA)")")
      TDROWS+=("$(printf 'Gatehouse / %s\t\t\t\t%s\t%s\t%s\t\t' "${LABEL[$i]}" \
        "$(ratio_hi "${R[gatehouse.tka.eff]}" "${R[$i.tka.eff]}" NA)" \
        "$(ratio_hi "${R[gatehouse.ths.eff]}" "${R[$i.ths.eff]}" NA)" \
        "$(ratio_hi "${R[gatehouse.tfull.eff]}" "${R[$i.tfull.eff]}" NA)")")
    done
    # DESIGN.md: TLS handshakes/s at least 1.2x nginx. Judged on full and on resumed handshakes,
    # by req/s and by work per proxy core (the load generator's core is often the limit here).
    verdict() { awk -v a="${1%x}" -v b="${2%x}" 'BEGIN {
      if (a == "n/a" || b == "n/a") print "n/a"; else if (a + 0 >= 1.2) print "met";
      else if (b + 0 >= 1.2) print "met per proxy core only"; else print "not met" }'; }
    rf=$(ratio_hi "${R[gatehouse.tfull.rps]}" "${R[nginx.tfull.rps]}" NA)
    rfc=$(ratio_hi "${R[gatehouse.tfull.eff]}" "${R[nginx.tfull.eff]}" NA)
    rr=$(ratio_hi "${R[gatehouse.ths.rps]}" "${R[nginx.ths.rps]}" NA)
    rrc=$(ratio_hi "${R[gatehouse.ths.eff]}" "${R[nginx.ths.eff]}" NA)
    TLS_TARGET_LINE="TLS target (DESIGN.md: handshakes/s at least 1.2x nginx): full handshakes $rf (per proxy core $rfc): $(verdict "$rf" "$rfc"); handshakes as wrk makes them $rr (per proxy core $rrc): $(verdict "$rr" "$rrc")."
  fi
fi

# UDP tables: Gatehouse / nginx stream udp (HAProxy has no UDP: n/a). ulat = 1 flow with 1
# datagram in flight (latency), utp = UDP_FLOWS flows x UDP_WINDOW in flight (packets/s).
UFW="${UDP_FLOWS}x${UDP_WINDOW}"
UHEAD=("UDP target" "1x1 pps" "1x1 p50 us" "1x1 p99 us" "$UFW pps" "$UFW p50 us" "$UFW p99 us" "$UFW lost %")
UDHEAD=("UDP target" "CPU% 1x1" "CPU% $UFW" "1x1 pps per core" "$UFW pps per core" "max us 1x1/$UFW" "lost/sent 1x1" "lost/sent $UFW" "errors 1x1/$UFW" "other CPU% 1x1/$UFW")
UROWS=(); UDROWS=()
lost_pct() { awk -v l="$1" -v s="$2" 'BEGIN { if (s + 0 == 0) print "NA"; else printf "%.2g\n", 100 * l / s }'; }
if [[ ${#UDP_TARGETS[@]} -gt 0 ]]; then
  for t in "${UDP_TARGETS[@]}"; do
    for k in ulat utp; do R[$t.$k.eff]=$(per_core "$(r "$t.$k.pps")" "${R[$t.$k.cpu]:--}" "%.0f"); done
    UROWS+=("$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "${UDP_LABEL[$t]}" \
      "$(r "$t.ulat.pps")" "$(r "$t.ulat.p50")" "$(r "$t.ulat.p99")" \
      "$(r "$t.utp.pps")" "$(r "$t.utp.p50")" "$(r "$t.utp.p99")" "$(lost_pct "$(r "$t.utp.lost")" "$(r "$t.utp.sent")")")")
    UDROWS+=("$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "${UDP_LABEL[$t]}" \
      "${R[$t.ulat.cpu]:--}" "${R[$t.utp.cpu]:--}" "${R[$t.ulat.eff]}" "${R[$t.utp.eff]}" \
      "$(r "$t.ulat.max")/$(r "$t.utp.max")" "$(r "$t.ulat.lost")/$(r "$t.ulat.sent")" "$(r "$t.utp.lost")/$(r "$t.utp.sent")" \
      "${R[$t.ulat.err]:--}/${R[$t.utp.err]:--}" "${R[$t.ulat.oth]:--}/${R[$t.utp.oth]:--}")")
    if [[ $t == nginx ]]; then   # HAProxy's row, in the order of the other tables
      UROWS+=("$(printf 'HAProxy\tn/a (no UDP)\tn/a\tn/a\tn/a\tn/a\tn/a\tn/a')")
      UDROWS+=("$(printf 'HAProxy\tn/a (no UDP)\tn/a\tn/a\tn/a\tn/a\tn/a\tn/a\tn/a\tn/a')")
    fi
  done
  if [[ $SKIP_GATEHOUSE != 1 ]]; then
    uh() { ratio_hi "$(r "gatehouse.$1")" "$(r "nginx.$1")" NA; }
    ul() { ratio_lo "$(r "gatehouse.$1")" "$(r "nginx.$1")" NA; }
    UROWS+=("$(printf 'Gatehouse / nginx\t%s\t%s\t%s\t%s\t%s\t%s\t' \
      "$(uh ulat.pps)" "$(ul ulat.p50)" "$(ul ulat.p99)" "$(uh utp.pps)" "$(ul utp.p50)" "$(ul utp.p99)")")
    UDROWS+=("$(printf 'Gatehouse / nginx\t\t\t%s\t%s\t\t\t\t\t' "$(uh ulat.eff)" "$(uh utp.eff)")")
  fi
fi

print_text_table() { # header array name, rows array name
  local -n h=$1 r=$2
  { (IFS=$'\t'; echo "${h[*]}"); printf '%s\n' "${r[@]}"; } |
    awk -F'\t' '{ for (i = 1; i <= NF; i++) { c[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } n = NF; rows = NR }
      END { for (j = 1; j <= rows; j++) { line = ""
              for (i = 1; i <= n; i++) line = line sprintf(i == 1 ? "%-*s" : "  %*s", w[i], c[j, i])
              print line
              if (j == 1) { s = ""; for (i = 1; i <= length(line); i++) s = s "-"; print s } } }'
}
print_md_table() {
  local -n h=$1 r=$2
  printf "| %s " "${h[@]}"; echo "|"
  local sep="|" i
  for ((i = 0; i < ${#h[@]}; i++)); do if [[ $i == 0 ]]; then sep+=":---|"; else sep+="---:|"; fi; done
  echo "$sep"
  printf '%s\n' "${r[@]}" | sed 's/\t/ | /g; s/^/| /; s/$/ |/'
}

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
NGINX_V=$( (nginx -v 2>&1 || true) | sed 's/^nginx version: //')
HAPROXY_V=$( (haproxy -v 2>/dev/null || true) | awk 'NR == 1 { print $3 }')
WRK_V=$( (wrk -v 2>&1 || true) | awk 'NR == 1 { print $2 }')
IPERF_V=$( (iperf3 -v 2>/dev/null || true) | awk 'NR == 1 { print $2 }')
H2LOAD_V=$( (h2load --version 2>/dev/null || true) | awk 'NR == 1 { print $2 }')
GH_V="skipped"
# TLS libraries in use: the system OpenSSL (clients, nginx, HAProxy), rustls + aws-lc-rs (Gatehouse)
TLS_LIBS="client (wrk, s_time) $(openssl version | awk '{ print $1, $2 }')"
TLS_LIBS+="; nginx running with $(nginx -V 2>&1 | sed -n 's/.*running with \(OpenSSL [^ ]*\).*/\1/p' | sed -n 1p)"
TLS_LIBS+="; HAProxy running on $( (haproxy -vv 2>/dev/null || true) | sed -n 's/^Running on OpenSSL version : \(OpenSSL [^ ]*\).*/\1/p')"
if [[ $SKIP_GATEHOUSE != 1 ]]; then
  TLS_LIBS+="; Gatehouse $(awk '/^name = "(rustls|aws-lc-rs)"$/ { n = $3; gsub(/"/, "", n); getline; v = $3; gsub(/"/, "", v); printf "%s%s %s", sep, n, v; sep = " + " }' "$REPO_DIR/Cargo.lock" 2>/dev/null || true) (Cargo.lock)"
fi
if [[ $SKIP_GATEHOUSE != 1 ]]; then
  GH_V="$GH_BIN"
  if GIT_REV=$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null); then
    git -C "$REPO_DIR" diff --quiet HEAD 2>/dev/null || GIT_REV="$GIT_REV+dirty"
    GH_V="$GH_V (repo $GIT_REV)"
  fi
fi
NOW=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
SPLICE_DESC=$([[ $HAPROXY_SPLICE == 1 ]] && echo "splice-request + splice-response forced" || echo "stock config, no splice")

echo
echo "Gatehouse L4, TLS, HTTP and UDP benchmark, $NOW, ${DURATION}s per run x $ROUNDS round(s) (median), loopback 127.0.0.1, 1 worker per proxy"
echo "machine: $(nproc) CPUs ($CPU_MODEL), kernel $(uname -r)"
echo "cores: $CORE_NOTE"
# tests in which some proxy did not keep its core busy: the load core was the limit there
NOTES=()
NOISY=$(printf '%s\n' "${OTHER_MAX[@]}" | awk -v lim="$NOISE_PCT" '$1 + $2 >= lim { printf "%s%s (%s%%, steal %s%%)", n++ ? ", " : "", $3, $1, $2 }')
if [[ -n $NOISY ]]; then
  NOTES+=("WARNING: other work (processes not started here, or hypervisor steal) took at least ${NOISE_PCT}% of a core during: $NOISY (after up to $RETRIES repeats). Those figures are unreliable; rerun on an idle machine or with ROUNDS=3.")
fi
if [[ $BUSY_BEFORE -gt 10 ]]; then
  NOTES+=("WARNING: other work kept the machine ${BUSY_BEFORE}% busy just before measuring (load average $LOAD_BEFORE); figures are noisy, rerun on an idle machine or with ROUNDS=3.")
fi
UNSAT=()
for k in ka:keep-alive nc:new-conn tp:iperf3; do
  for t in "${TARGETS[@]}"; do
    [[ $t == direct ]] && continue
    c=${R[$t.${k%%:*}.cpu]:-}
    if [[ $c =~ ^[0-9]+$ && $c -lt 90 ]]; then UNSAT+=("${k#*:}"); break; fi
  done
done
for k in hka:HTTP-keep-alive hnc:HTTP-new-conn hska:HTTPS-keep-alive h2:HTTP/2; do
  for t in "${HTTP_TARGETS[@]}"; do
    c=${R[$t.${k%%:*}.cpu]:-}
    if [[ $c =~ ^[0-9]+$ && $c -lt 90 ]]; then UNSAT+=("${k#*:}"); break; fi
  done
done
for k in tka:TLS-keep-alive ths:TLS-handshakes tfull:TLS-full-handshakes; do
  for t in "${TLS_TARGETS[@]}"; do
    c=${R[$t.${k%%:*}.cpu]}
    if [[ $c =~ ^[0-9]+$ && $c -lt 90 ]]; then UNSAT+=("${k#*:}"); break; fi
  done
done
# UDP: only the packets/s test is meant to fill the proxy's core (1 x 1 waits for every reply)
for t in "${UDP_TARGETS[@]}"; do
  [[ $t == direct ]] && continue
  c=${R[$t.utp.cpu]:-}
  if [[ $c =~ ^[0-9]+$ && $c -lt 90 ]]; then UNSAT+=("UDP-packets/s"); break; fi
done
if [[ ${#UNSAT[@]} -gt 0 ]]; then
  NOTES+=("Some proxy used under 90% of its core in: ${UNSAT[*]}. There the load generator and backend core was the limit, so req/s ratios are compressed towards 1; compare the per-core columns (work per proxy CPU) as well.")
fi
if [[ $SKIP_GATEHOUSE != 1 ]]; then
  NOTES+=("Ratio rows compare Gatehouse with the better of nginx and HAProxy; >1 means Gatehouse is better (req/s, Gbit/s, per core: gatehouse / best; p99 latency: best / gatehouse, since lower is better).")
else
  NOTES+=("Gatehouse skipped (SKIP_GATEHOUSE=1): no ratios.")
fi
if [[ ${#TLS_TARGETS[@]} -gt 0 ]]; then
  TLS_DESC=""; NORESUME=""
  for t in "${TLS_TARGETS[@]}"; do
    TLS_DESC+="${TLS_DESC:+; }${LABEL[$t]}: ${TLS_INFO[$t]}"
    [[ ${TLS_INFO[$t]} == *"no resumption"* ]] && NORESUME+="${NORESUME:+, }${LABEL[$t]}"
  done
  NOTES+=("TLS: each proxy terminates TLS with the same self-signed ECDSA P-256 certificate and forwards plain TCP to the backend. Negotiated with openssl s_client: $TLS_DESC. handshakes/s (wrk) = wrk over https with 'Connection: close': wrk offers each slot's previous session, so against a server that resumes these are resumed handshakes (TLS 1.3: PSK + ECDHE, no certificate or signature). full handshakes/s (s_time) = $STIME_PROCS parallel 'openssl s_time -new -www /': no session offered, a full handshake (certificate + ECDSA signature) and one request per connection. p99 is wrk's time from sending the request to the response; wrk starts that clock after the connect and the handshake. TLS ratio rows: Gatehouse / that incumbent (p99: incumbent / Gatehouse).")
  if [[ -n $NORESUME ]]; then
    NOTES+=("WARNING: $NORESUME did not resume a TLS session in the probe, so its wrk handshakes/s are full handshakes while the others' are resumed; compare the s_time column instead.")
  fi
  [[ -n $TLS_TARGET_LINE ]] && NOTES+=("$TLS_TARGET_LINE")
fi
if [[ ${#HTTP_TARGETS[@]} -gt 0 ]]; then
  L7_DESC=""
  for t in "${HTTP_TARGETS[@]}"; do L7_DESC+="${L7_DESC:+; }${L7_LABEL[$t]}: ${TLS_INFO[$t.https]}"; done
  NOTES+=("HTTP: each proxy parses HTTP and forwards to the same backend over pooled keep-alive connections (nginx \`http\` with \`upstream { keepalive 64; }\` and \`proxy_http_version 1.1\`; HAProxy \`mode http\`, http-reuse at its default; Gatehouse \`protocol: HTTP\` / \`HTTPS\` listeners). h1 = HTTP/1.1 with wrk (no ALPN); new-conn = \`Connection: close\` on every request; HTTPS = the same certificate as the TLS tests, TLS negotiated with openssl s_client: $L7_DESC. h2 = \`h2load -D $DURATION -c $H2_CLIENTS -m $H2_STREAMS\` over TLS with ALPN h2; h2load gives no percentiles, so its mean and max time per request are shown, and the ratio on them is best / Gatehouse. Logging: Gatehouse writes an access-log line per HTTP request, nginx \`http\` its default access log (one combined line per request, to a file in the temp dir), HAProxy nothing (no \`log\` line, its default).")
  [[ -n $H2_MISSING ]] && NOTES+=("WARNING: $H2_MISSING did not answer HTTP/2 over ALPN h2 in the probe and is left out of the h2 column.")
  if [[ ${#HTTP_VERDICTS[@]} -gt 0 ]]; then
    NOTES+=("HTTP target (requests/s at least 1.1x the better incumbent, with p99 no worse): $(printf '%s; ' "${HTTP_VERDICTS[@]}" | sed 's/; $/./')")
  fi
fi
if [[ ${#UDP_TARGETS[@]} -gt 0 ]]; then
  NOTES+=("UDP: udp-load (crates/gatehouse-testkit/src/bin/udp-load.rs) sends $UDP_SIZE-byte datagrams through each proxy to one udp-load echo server (one socket, one thread, on the load CPU). Each client flow is a socket of its own (its own source port, so one session in nginx and one flow in Gatehouse) and keeps a fixed number of datagrams in flight, sending the next one when a reply comes back; a datagram with no reply after 1 s counts as lost and its slot is reused. 1x1 = one flow with one datagram in flight (round-trip latency, the proxy mostly idle); $UFW = $UDP_FLOWS flows x $UDP_WINDOW in flight (packets/s, the proxy's core full). pps = replies per second; p50/p99 = round-trip time through proxy and echo server, in microseconds (buckets of about 3%), over the last ${DURATION} s of each run (the first 0.5 s, flow setup, is left out). lost = sent - received over the whole run, summed over rounds. nginx: \`listen ... udp${NGINX_UDP_RCVBUF:+ rcvbuf=$NGINX_UDP_RCVBUF}\` (${NGINX_UDP_RCVBUF:+the receive buffer Gatehouse sets on its UDP listening socket, }$([[ -n $NGINX_UDP_RCVBUF ]] || echo "the OS default receive buffer, ")net.core.rmem_max $(sysctl -n net.core.rmem_max 2>/dev/null || echo ?)), \`proxy_timeout 60s\`, \`proxy_responses\` and \`proxy_requests\` at their defaults (unlimited); Gatehouse: a \`protocol: UDP\` listener, \`idleTimeout: 60s\`, \`maxFlows: 10000\`. HAProxy does not proxy UDP: n/a. Ratio row: Gatehouse / nginx (p50, p99: nginx / Gatehouse).")
fi
NOTES+=("Details: CPU% is the proxy's CPU time (all threads and worker processes) over the run's wall time, 100 = one core; per core = figure / (CPU%/100); ka = keep-alive, nc = new connection per request; other CPU% = approximate CPU used by processes not started here (% of one core, median over rounds).")

if [[ ${#ROWS[@]} -gt 0 ]]; then
  echo
  print_text_table HEAD ROWS
  echo
  print_text_table DHEAD DROWS
fi
echo
if [[ ${#HROWS[@]} -gt 0 ]]; then
  echo "HTTP proxying (layer 7), same backend; h1 = HTTP/1.1 (wrk), h2 = HTTP/2 over TLS (h2load)"
  print_text_table HHEAD HROWS
  echo
  print_text_table HDHEAD HDROWS
  echo
fi
if [[ ${#TROWS[@]} -gt 0 ]]; then
  echo "TLS termination, same ECDSA P-256 certificate everywhere; TLS libraries: $TLS_LIBS"
  print_text_table THEAD TROWS
  echo
  print_text_table TDHEAD TDROWS
  echo
fi
if [[ ${#UROWS[@]} -gt 0 ]]; then
  echo "UDP, same echo backend; 1x1 = 1 flow, 1 datagram in flight; $UFW = $UDP_FLOWS flows x $UDP_WINDOW in flight; $UDP_SIZE-byte payload"
  print_text_table UHEAD UROWS
  echo
  print_text_table UDHEAD UDROWS
  echo
fi
printf -- '- %s\n' "${NOTES[@]}" | fold -s -w 110
echo "machine busy before: ${BUSY_BEFORE}%; load average before/after: $LOAD_BEFORE / $LOAD_AFTER"

mkdir -p "$(dirname "$OUT_FILE")"
{
  echo "# Gatehouse L4 TCP, TLS, HTTP and UDP benchmark"
  echo
  echo "- date: $NOW"
  echo "- runs: ${DURATION}s per measurement, $ROUNDS round(s), median reported"
  echo "- machine: $(nproc) CPUs, $CPU_MODEL; kernel $(uname -r)"
  echo "- cores: $CORE_NOTE"
  echo "- versions: $NGINX_V; HAProxy $HAPROXY_V ($SPLICE_DESC); wrk $WRK_V; iperf3 $IPERF_V; h2load $H2LOAD_V; gatehouse: $GH_V"
  echo "- each proxy: one worker (nginx \`worker_processes 1\`, HAProxy \`nbthread 1\`, Gatehouse \`--threads 1\`), listening on 127.0.0.1, forwarding to the same backend"
  echo "- backend: nginx HTTP, 1 worker, \`return 200 \"ok\\n\"\`, keep-alive; iperf3 -s$([[ $SKIP_UDP == 1 ]] || echo "; UDP: udp-load echo (1 thread)")"
  [[ $SKIP_L4 == 1 ]] || echo "- load: \`wrk -t1 -c$WRK_CONNS -d${DURATION}s --latency\` (keep-alive), same plus \`-H 'Connection: close'\` (new connection per request), \`iperf3 -c 127.0.0.1 -t $DURATION -O 1\` (one stream)"
  echo "- other work on the machine: ${BUSY_BEFORE}% CPU busy just before measuring; load average before/after: $LOAD_BEFORE / $LOAD_AFTER"
  echo
  if [[ ${#ROWS[@]} -gt 0 ]]; then
    print_md_table HEAD ROWS
    echo
    print_md_table DHEAD DROWS
    echo
  fi
  if [[ ${#HROWS[@]} -gt 0 ]]; then
    echo "HTTP proxying: nginx \`http\` (upstream keepalive 64), HTTP/1.1 to the backend; HAProxy \`mode http\`; Gatehouse HTTP/HTTPS listeners. Load: \`wrk -t1 -c$WRK_CONNS -d${DURATION}s --latency\` over http (keep-alive; plus \`-H 'Connection: close'\` for new-conn) and https (keep-alive); \`h2load -D $DURATION -c $H2_CLIENTS -m $H2_STREAMS https://...\` (HTTP/2, ALPN h2)"
    echo
    print_md_table HHEAD HROWS
    echo
    print_md_table HDHEAD HDROWS
    echo
  fi
  if [[ ${#TROWS[@]} -gt 0 ]]; then
    echo "TLS termination: same certificate (ECDSA P-256) for all; TLS libraries: $TLS_LIBS; TLS load: \`wrk -t1 -c$WRK_CONNS -d${DURATION}s --latency https://...\` (keep-alive), same plus \`-H 'Connection: close'\` (handshake per request), $STIME_PROCS x \`openssl s_time -new -www / -time $DURATION\` (full handshakes)"
    echo
    print_md_table THEAD TROWS
    echo
    print_md_table TDHEAD TDROWS
    echo
  fi
  if [[ ${#UROWS[@]} -gt 0 ]]; then
    echo "UDP: nginx \`stream\` (\`listen ... udp\`), Gatehouse \`protocol: UDP\` listener, both to one udp-load echo server; HAProxy has no UDP. Load: \`udp-load run --flows 1 --window 1\` (1x1, latency) and \`--flows $UDP_FLOWS --window $UDP_WINDOW\` ($UFW, packets/s), $UDP_SIZE-byte payload, ${DURATION} s measured after 0.5 s of warm-up"
    echo
    print_md_table UHEAD UROWS
    echo
    print_md_table UDHEAD UDROWS
    echo
  fi
  printf -- '- %s\n' "${NOTES[@]}"
} >"$OUT_FILE"
log "markdown written to $OUT_FILE"
