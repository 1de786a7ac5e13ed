#!/usr/bin/env bash
# Gatehouse DNS benchmark: Gatehouse's DNS server against dnsmasq, unbound and Knot DNS, side by
# side on one machine, loopback (127.0.0.1) only, one worker each, all answering the same local
# zone `bench.test` (a wildcard `*.bench.test A 127.0.0.42` and four exact names) with no
# forwarding. Load: dnsperf, many distinct names under the wildcard plus some exact ones.
# The server runs pinned alone on one CPU, dnsperf on another.
#
# Usage: bench/dns.sh [--quick] [--out FILE] [--help]
# Environment:
#   DURATION      seconds per dnsperf run (default 10; --quick sets 3)
#   ROUNDS        runs per server, the median is reported (default 3; --quick sets 1)
#   CLIENTS       dnsperf -c: client sockets, each its own source port (default 4)
#   OUTSTANDING   dnsperf -q: queries in flight at most (default 100)
#   MAX_QPS       dnsperf -Q: rate cap in queries/s (default empty: none, the server sets the pace)
#   NAMES         lines in the dnsperf input (default 100000; every 10th an exact name)
#   SERVERS       servers to measure, in this order (default "gatehouse dnsmasq unbound knot");
#                 unbound and knot are left out with a warning when they are not installed
#   INSTALL       1 = apt-get install what is missing (default 1): dnsperf, dnsmasq-base and
#                 bind9-dnsutils (dig) are required; unbound and knot are tried, optional.
#                 Service starts are denied during the install (policy-rc.d), a service a
#                 package started anyway is stopped, and port 53 and /etc/resolv.conf are checked
#   GATEHOUSE_BIN use this gatehouse binary instead of `cargo build --release -p gatehouse`
#   BASE_PORT     first port (default 19530): gatehouse +0, dnsmasq +1, unbound +2, knot +3
#   LOAD_CPU      CPU for dnsperf        (default: first allowed CPU)
#   SERVER_CPU    CPU for the DNS server (default: second allowed CPU)
#   RETRIES       repeat a run disturbed by other work up to N times (default 2; --quick: 1)
#   NOISE_PCT     "disturbed" = other processes/steal used >= this % of a core (default 15)
#   WAIT_QUIET    before each run, wait up to N s for other work to drop under NOISE_PCT
#                 (1 s samples; default 60; 0 = do not wait)
#   TARGET_RATIO  Gatehouse / dnsmasq queries/s to call the target met (default 1.5)
#   PROFILE       1 = after measuring, one more run against Gatehouse under
#                 `perf record -e cpu-clock -g`; the top symbols go into the report
#   KEEP_TMP      1 = keep the temp dir (configs, zone file, dnsperf output, logs)
# See bench/README.md ("DNS") and docs/benchmarks.md ("DNS").
set -euo pipefail
set -o errtrace
trap 'printf "[dns-bench] ERROR: line %s: %s failed\n" "$LINENO" "$BASH_COMMAND" >&2' ERR

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)

QUICK=0
OUT_FILE="$SCRIPT_DIR/last-dns-run.md"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --out) [[ $# -ge 2 ]] || { echo "--out needs a file" >&2; exit 2; }; OUT_FILE=$2; shift 2 ;;
    --out=*) OUT_FILE=${1#--out=}; shift ;;
    -h|--help) sed -n '2,34p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
done
if [[ $QUICK == 1 ]]; then DURATION=3; ROUNDS=${ROUNDS:-1}; RETRIES=${RETRIES:-1}; fi
DURATION=${DURATION:-10}
DURATION=${DURATION%s}
ROUNDS=${ROUNDS:-3}
RETRIES=${RETRIES:-2}
NOISE_PCT=${NOISE_PCT:-15}
WAIT_QUIET=${WAIT_QUIET:-60}
CLIENTS=${CLIENTS:-4}
OUTSTANDING=${OUTSTANDING:-100}
MAX_QPS=${MAX_QPS:-}
NAMES=${NAMES:-100000}
SERVERS=${SERVERS:-gatehouse dnsmasq unbound knot}
INSTALL=${INSTALL:-1}
TARGET_RATIO=${TARGET_RATIO:-1.5}
PROFILE=${PROFILE:-0}
KEEP_TMP=${KEEP_TMP:-0}
BASE_PORT=${BASE_PORT:-19530}
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 1 ]] || { echo "DURATION must be a whole number of seconds" >&2; exit 2; }
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 && $ROUNDS -le 20 ]] || { echo "ROUNDS must be 1..20" >&2; exit 2; }
[[ $RETRIES =~ ^[0-9]+$ && $RETRIES -le 5 ]] || { echo "RETRIES must be 0..5" >&2; exit 2; }
[[ $NOISE_PCT =~ ^[0-9]+$ ]] || { echo "NOISE_PCT must be a whole number" >&2; exit 2; }
[[ $WAIT_QUIET =~ ^[0-9]+$ ]] || { echo "WAIT_QUIET must be a whole number of seconds" >&2; exit 2; }
[[ $CLIENTS =~ ^[0-9]+$ && $CLIENTS -ge 1 && $CLIENTS -le 256 ]] || { echo "CLIENTS must be 1..256" >&2; exit 2; }
[[ $OUTSTANDING =~ ^[0-9]+$ && $OUTSTANDING -ge 1 && $OUTSTANDING -le 65535 ]] || { echo "OUTSTANDING must be 1..65535" >&2; exit 2; }
[[ -z $MAX_QPS || $MAX_QPS =~ ^[0-9]+$ ]] || { echo "MAX_QPS must be a whole number or empty" >&2; exit 2; }
[[ $NAMES =~ ^[0-9]+$ && $NAMES -ge 10 && $NAMES -le 10000000 ]] || { echo "NAMES must be 10..10000000" >&2; exit 2; }
[[ $BASE_PORT =~ ^[0-9]+$ && $BASE_PORT -ge 1024 && $BASE_PORT -le 65530 ]] || { echo "BASE_PORT must be 1024..65530" >&2; exit 2; }
[[ $TARGET_RATIO =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "TARGET_RATIO must be a number" >&2; exit 2; }
HOST=127.0.0.1   # never anything else
ZONE=bench.test
WILDCARD_ADDR=127.0.0.42
declare -A PORT=([gatehouse]=$BASE_PORT [dnsmasq]=$((BASE_PORT + 1)) [unbound]=$((BASE_PORT + 2)) [knot]=$((BASE_PORT + 3)))
declare -A LABEL=([gatehouse]=Gatehouse [dnsmasq]=dnsmasq [unbound]=unbound [knot]="Knot DNS")
# the exact names of the zone (besides the apex SOA and NS), the same in every server
EXACT_NAMES=(ns:127.0.0.1 www:127.0.0.43 mail:127.0.0.44 api:127.0.0.45)

log() { printf '[dns-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- processes
TMP=""
PIDS=()
POLICY_RC_CREATED=0
cleanup() {
  local rc=$? pid i
  trap - EXIT INT TERM
  if [[ $POLICY_RC_CREATED == 1 ]]; then $([[ $(id -u) == 0 ]] || echo sudo) rm -f /usr/sbin/policy-rc.d || true; fi
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
  done
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

# ---------------------------------------------------------------- tools
# apt-get install PACKAGES with service starts denied (a postinst must not start a system
# unbound or knot on port 53), then make sure none was started and resolv.conf is unchanged.
apt_install() {
  local sudo="" resolv0 resolv1 svc rc=0 l53
  [[ $(id -u) == 0 ]] || sudo="sudo"
  resolv0=$(md5sum /etc/resolv.conf 2>/dev/null || true)
  l53=$(ss -Hlnp 'sport = :53' 2>/dev/null || true)
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod 755 /usr/sbin/policy-rc.d
    POLICY_RC_CREATED=1
  fi
  DEBIAN_FRONTEND=noninteractive timeout 600 $sudo apt-get install -y "$@" || rc=$?
  if [[ $POLICY_RC_CREATED == 1 ]]; then $sudo rm -f /usr/sbin/policy-rc.d; POLICY_RC_CREATED=0; fi
  if command -v systemctl >/dev/null 2>&1; then
    for svc in unbound unbound-resolvconf knot dnsmasq; do
      if systemctl is-active --quiet "$svc" 2>/dev/null; then
        log "stopping the system $svc service a package started"
        $sudo systemctl stop "$svc" || true
      fi
    done
  fi
  resolv1=$(md5sum /etc/resolv.conf 2>/dev/null || true)
  [[ $resolv0 == "$resolv1" ]] || log "WARNING: /etc/resolv.conf changed during apt-get install $*: check it"
  [[ $(ss -Hlnp 'sport = :53' 2>/dev/null || true) == "$l53" ]] \
    || log "WARNING: something new listens on port 53 after apt-get install $*: $(ss -Hlnp 'sport = :53' | tr -s ' ' | head -3)"
  return "$rc"
}

ensure_tools() {
  local c missing=() optional=()
  command -v dnsperf >/dev/null 2>&1 || missing+=(dnsperf)
  command -v dnsmasq >/dev/null 2>&1 || missing+=(dnsmasq-base)   # the binary, no system service
  command -v dig >/dev/null 2>&1 || missing+=(bind9-dnsutils)
  [[ " $SERVERS " == *" unbound "* ]] && ! command -v unbound >/dev/null 2>&1 && optional+=(unbound)
  [[ " $SERVERS " == *" knot "* ]] && ! command -v knotd >/dev/null 2>&1 && optional+=(knot)
  if [[ $INSTALL == 1 && $((${#missing[@]} + ${#optional[@]})) -gt 0 ]]; then
    log "installing ${missing[*]} ${optional[*]}"
    $([[ $(id -u) == 0 ]] || echo sudo) apt-get update -qq || true
    if [[ ${#missing[@]} -gt 0 ]]; then apt_install "${missing[@]}" || die "could not install ${missing[*]}"; fi
    if [[ ${#optional[@]} -gt 0 ]]; then apt_install "${optional[@]}" || log "WARNING: could not install ${optional[*]}: left out"; fi
  fi
  for c in dnsperf dnsmasq dig taskset ss awk; do
    command -v "$c" >/dev/null 2>&1 || die "required command not found: $c"
  done
  local s kept=()
  for s in $SERVERS; do
    case $s in
      gatehouse|dnsmasq) kept+=("$s") ;;
      unbound) if command -v unbound >/dev/null 2>&1; then kept+=("$s"); else log "WARNING: unbound not installed: left out"; fi ;;
      knot) if command -v knotd >/dev/null 2>&1; then kept+=("$s"); else log "WARNING: knotd not installed: left out"; fi ;;
      *) die "unknown server in SERVERS: $s (gatehouse dnsmasq unbound knot)" ;;
    esac
  done
  SERVER_LIST=("${kept[@]}")
  [[ ${#SERVER_LIST[@]} -ge 1 ]] || die "no server to measure"
  if [[ ${SERVER_LIST[*]} == *gatehouse* || ${SERVER_LIST[*]} == *dnsmasq* ]] && ss -Hlun 'sport = :53' | grep -q .; then
    log "note: something on this machine listens on UDP port 53 (not started here); this benchmark does not use port 53"
  fi
}

# port_busy PORT : a TCP or UDP socket is bound to PORT
port_busy() { [[ -n $(ss -Hlun "sport = :$1" 2>/dev/null) || -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }

# start NAME LOGFILE CMD... : run CMD in the foreground of a background job, pinned to SERVER_CPU
declare -A PID_OF=()
start() {
  local name=$1 logf=$2; shift 2
  taskset -c "$SERVER_CPU" "$@" >"$logf" 2>&1 &
  PID_OF[$name]=$!
  PIDS+=("$!")
  log "started $name (pid $!, cpu $SERVER_CPU, port ${PORT[$name]})"
}

# dig_a NAME PORT QNAME : "STATUS FLAGS ADDRESSES" of one A query (UDP, no recursion asked)
dig_a() {
  local out
  out=$(dig +norec +tries=1 +time=2 -p "$2" "@$HOST" "$3" A +noall +comments +answer 2>&1 || true)
  printf '%s %s %s\n' \
    "$(awk '/status:/ { s = $0; sub(/.*status: /, "", s); sub(/,.*/, "", s); print s; exit }' <<<"$out")" \
    "$(awk '/;; flags:/ { s = $0; sub(/.*flags: /, "", s); sub(/;.*/, "", s); gsub(/ /, "+", s); print s; exit }' <<<"$out")" \
    "$(awk '$4 == "A" { printf "%s%s", (n++ ? "," : ""), $5 }' <<<"$out")"
}

# wait_ready NAME : bounded poll (10 s) until the server answers a query
wait_ready() {
  local name=$1 pid=${PID_OF[$1]} i r
  for ((i = 0; i < 100; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name exited before becoming ready; last lines of its log:"
      tail -n 20 "$TMP/$name.log" >&2 || true
      die "$name failed to start"
    fi
    r=$(dig_a "$name" "${PORT[$name]}" "ready.$ZONE")
    [[ $r == NOERROR* ]] && return 0
    sleep 0.1
  done
  tail -n 20 "$TMP/$name.log" >&2 || true
  die "$name does not answer on $HOST:${PORT[$name]} after 10 s"
}

# check_answers NAME : a wildcard name (one label and two), and an exact name, give the zone's
# addresses with NOERROR. Sets CHECK[NAME] for the report.
declare -A CHECK=()
check_answers() {
  local name=$1 port=${PORT[$1]} q r want st flags addrs note=""
  for q in "check-$RANDOM$RANDOM.$ZONE:$WILDCARD_ADDR" "a.b-$RANDOM.$ZONE:$WILDCARD_ADDR" "www.$ZONE:127.0.0.43"; do
    want=${q#*:}; q=${q%%:*}
    r=$(dig_a "$name" "$port" "$q")
    read -r st flags addrs <<<"$r"
    [[ $st == NOERROR && $addrs == "$want" ]] || die "$name on $HOST:$port: $q A gave '$r', expected NOERROR $want"
    [[ $flags == *aa* ]] || note=" (no AA flag)"
  done
  CHECK[$name]="wildcard and exact names correct$note"
  log "  $name: $q -> $addrs; wildcard names -> $WILDCARD_ADDR$note"
}

# ---------------------------------------------------------------- measurement
CLK_TCK=$(getconf CLK_TCK)
proc_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' /proc/"$1"/stat 2>/dev/null || echo 0; }
# "busy steal" ticks of the whole machine
machine_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8, $9; exit }' /proc/stat; }

declare -A RAW=() R=()
NOISE_WARN=()
# run_dnsperf NAME ROUND : one dnsperf run against NAME; RUN_* hold the results
run_dnsperf() {
  local name=$1 round=$2 pid=${PID_OF[$1]} out f t0 t1 c0 c1 b0 b1 s0 s1 w0 w1 ns
  local -a q=()
  [[ -n $MAX_QPS ]] && q=(-Q "$MAX_QPS")
  f="$TMP/dnsperf-$name-round$round.txt"
  t0=$(proc_ticks "$pid"); read -r b0 s0 < <(machine_ticks); w0=$(date +%s%N)
  # a shell of its own around dnsperf: its children's CPU time, read when dnsperf is done,
  # is dnsperf's alone
  DNSPERF_TICKS=$(bash -c 'taskset -c "$1" timeout "$2" "${@:3}" >"$0" 2>&1 || exit 1
    awk '"'"'{ sub(/^.*\) /, ""); print $14 + $15 }'"'"' /proc/$$/stat' \
    "$f" "$LOAD_CPU" $((DURATION + 60)) \
    dnsperf -s "$HOST" -p "${PORT[$name]}" -d "$TMP/queries.txt" -l "$DURATION" \
      -c "$CLIENTS" -q "$OUTSTANDING" "${q[@]}") \
    || { tail -n 20 "$f" >&2; die "dnsperf failed against $name"; }
  w1=$(date +%s%N); read -r b1 s1 < <(machine_ticks); t1=$(proc_ticks "$pid")
  c0=0; c1=$DNSPERF_TICKS
  ns=$((w1 - w0))
  out=$(awk '
    /Queries sent:/ { sent = $3 }
    /Queries completed:/ { done = $3 }
    /Queries lost:/ { lost = $3 }
    /Response codes:/ { rc = $0; sub(/.*Response codes: */, "", rc); gsub(/ /, "_", rc) }
    /Average packet size:/ { gsub(/,/, ""); resp = $NF }
    /Queries per second:/ { qps = $4 }
    /Average Latency \(s\):/ { avg = $4; max = $8; sub(/\)/, "", max) }
    END { printf "%s %s %s %s %s %s %s %s\n", qps ? qps : "NA", sent ? sent : 0, done ? done : 0, lost ? lost : 0,
                 avg ? avg * 1000 : "NA", max ? max * 1000 : "NA", resp ? resp : "NA", rc ? rc : "none" }' "$f")
  read -r RUN_QPS RUN_SENT RUN_DONE RUN_LOST RUN_AVG RUN_MAX RUN_RESP RUN_RC <<<"$out"
  RUN_QPS=$(awk -v v="$RUN_QPS" 'BEGIN { if (v == "NA") print v; else printf "%.0f", v }')
  RUN_CPU=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v ns="$ns" 'BEGIN { printf "%.0f", 100 * d / hz / (ns / 1e9) }')
  RUN_LCPU=$(awk -v d=$((c1 - c0)) -v hz="$CLK_TCK" -v ns="$ns" 'BEGIN { printf "%.0f", 100 * d / hz / (ns / 1e9) }')
  RUN_OTH=$(awk -v b=$((b1 - b0)) -v o=$((t1 - t0 + c1 - c0)) -v st=$((s1 - s0)) -v hz="$CLK_TCK" -v ns="$ns" \
    'BEGIN { x = b - o; if (x < 0) x = 0; printf "%.0f", 100 * (x + st) / hz / (ns / 1e9) }')
  # every answer must be NOERROR
  RUN_BAD=0
  if [[ $RUN_RC != "NOERROR_${RUN_DONE}_"* && $RUN_DONE != 0 ]]; then RUN_BAD=1; fi
}

# busy_pct : CPU used on the whole machine over 1 s, % of one core (our servers idle meanwhile)
busy_pct() {
  local b0 s0 b1 s1 w0 w1
  read -r b0 s0 < <(machine_ticks); w0=$(date +%s%N)
  sleep 1
  read -r b1 s1 < <(machine_ticks); w1=$(date +%s%N)
  awk -v b=$((b1 - b0 + s1 - s0)) -v hz="$CLK_TCK" -v ns=$((w1 - w0)) 'BEGIN { printf "%.0f", 100 * b / hz / (ns / 1e9) }'
}
# wait_quiet : wait (up to WAIT_QUIET s) until other work takes under NOISE_PCT% of a core
wait_quiet() {
  local end=$((SECONDS + WAIT_QUIET)) pct said=0
  [[ $WAIT_QUIET == 0 ]] && return 0
  while :; do
    pct=$(busy_pct)
    [[ $pct -lt $NOISE_PCT ]] && return 0
    if [[ $SECONDS -ge $end ]]; then
      log "  other work still takes ${pct}% of a core after ${WAIT_QUIET}s of waiting: measuring anyway"
      return 0
    fi
    [[ $said == 1 ]] || log "  other work takes ${pct}% of a core: waiting (up to ${WAIT_QUIET}s) for it to drop under ${NOISE_PCT}%"
    said=1
    sleep 4
  done
}

# measure NAME ROUND : one accepted run (repeated while other work disturbs it)
measure() {
  local name=$1 round=$2 try
  for ((try = 0; try <= RETRIES; try++)); do
    wait_quiet
    run_dnsperf "$name" "$round"
    log "  $name round $round: $RUN_QPS q/s, lost $RUN_LOST/$RUN_SENT, avg $RUN_AVG ms, max $RUN_MAX ms, server cpu $RUN_CPU%, dnsperf cpu $RUN_LCPU%, other work $RUN_OTH%$([[ $RUN_BAD == 1 ]] && echo ", RESPONSE CODES: $RUN_RC")"
    [[ $RUN_OTH -lt $NOISE_PCT ]] && break
    [[ $try -lt $RETRIES ]] && log "  other work took ${RUN_OTH}% of a core: repeating"
  done
  [[ $RUN_OTH -ge $NOISE_PCT ]] && NOISE_WARN+=("$name round $round (${RUN_OTH}%)")
  [[ $RUN_BAD == 1 ]] && die "$name: not every answer was NOERROR ($RUN_RC); see $TMP/dnsperf-$name-round$round.txt"
  RAW[$name.qps]+="$RUN_QPS "; RAW[$name.lost]+="$RUN_LOST "; RAW[$name.sent]+="$RUN_SENT "
  RAW[$name.avg]+="$RUN_AVG "; RAW[$name.max]+="$RUN_MAX "; RAW[$name.cpu]+="$RUN_CPU "
  RAW[$name.lcpu]+="$RUN_LCPU "; RAW[$name.oth]+="$RUN_OTH "; RAW[$name.resp]="$RUN_RESP"
}

# summary over rounds: median; lost and sent: sum; max latency: the highest
summarize() {
  local k mode
  for k in "${!RAW[@]}"; do
    case $k in *.lost|*.sent) mode=sum ;; *.max) mode=max ;; *) mode=median ;; esac
    R[$k]=$(awk -v mode="$mode" '{
      n = NF; for (i = 1; i <= n; i++) { if ($i == "NA") { print "NA"; exit } v[i] = $i + 0; s += v[i] }
      if (mode == "sum") { printf "%.0f\n", s; exit }
      for (i = 2; i <= n; i++) { x = v[i]; j = i - 1; while (j >= 1 && v[j] > x) { v[j + 1] = v[j]; j-- } v[j + 1] = x }
      m = (mode == "max") ? v[n] : ((n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2)
      if (m >= 100 || m == int(m)) printf "%.0f\n", m; else printf "%.3g\n", m }' <<<"${RAW[$k]}")
  done
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "NA" || b == "NA" || b + 0 == 0) print "NA"; else printf "%.2fx", a / b }'; }
per_core() { awk -v q="$1" -v c="$2" 'BEGIN { if (q == "NA" || c + 0 == 0) print "NA"; else printf "%.0f", q / (c / 100) }'; }

# ================================================================ main
ensure_tools

mapfile -t ALLOWED < <(awk '/^Cpus_allowed_list/ { print $2 }' /proc/self/status | tr ',' '\n' |
  awk -F- '{ if (NF == 2) { for (i = $1; i <= $2; i++) print i } else print $1 }')
if [[ ${#ALLOWED[@]} -ge 2 ]]; then
  LOAD_CPU=${LOAD_CPU:-${ALLOWED[0]}}
  SERVER_CPU=${SERVER_CPU:-${ALLOWED[1]}}
  CORE_NOTE="CPU $LOAD_CPU: dnsperf; CPU $SERVER_CPU: the DNS server under test, alone (as far as this script controls; other processes on the machine are not moved)"
else
  LOAD_CPU=${LOAD_CPU:-${ALLOWED[0]:-0}}
  SERVER_CPU=${SERVER_CPU:-$LOAD_CPU}
  CORE_NOTE="only one CPU available: dnsperf and the server share CPU $LOAD_CPU; figures are indicative only"
fi

for s in "${SERVER_LIST[@]}"; do
  port_busy "${PORT[$s]}" && die "port ${PORT[$s]} ($s) is already in use; set BASE_PORT"
done

TMP=$(mktemp -d /tmp/gatehouse-dns-bench.XXXXXX)
log "temp dir $TMP; ${DURATION}s x $ROUNDS round(s); dnsperf -c $CLIENTS -q $OUTSTANDING${MAX_QPS:+ -Q $MAX_QPS} on cpu $LOAD_CPU, server on cpu $SERVER_CPU"

# gatehouse binary, copied so that a rebuild of target/ during the run does not change it
if [[ " ${SERVER_LIST[*]} " == *" gatehouse "* ]]; then
  if [[ -n ${GATEHOUSE_BIN:-} ]]; then
    [[ -x $GATEHOUSE_BIN ]] || die "GATEHOUSE_BIN=$GATEHOUSE_BIN is not executable"
    GH_SRC=$GATEHOUSE_BIN
  else
    log "building gatehouse (cargo build --release -p gatehouse)"
    (cd "$REPO_DIR" && cargo build --release -p gatehouse) >&2 || die "cargo build failed"
    GH_SRC="$REPO_DIR/target/release/gatehouse"
  fi
  cp "$GH_SRC" "$TMP/gatehouse-bin"
  GATEHOUSE="$TMP/gatehouse-bin"
  GH_COMMIT=$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo "?")
  git -C "$REPO_DIR" diff --quiet HEAD 2>/dev/null || GH_COMMIT+="+dirty"
fi

# ---------------------------------------------------------------- the zone and the queries
{
  printf '$ORIGIN %s.\n$TTL 300\n' "$ZONE"
  printf '@ IN SOA ns hostmaster 1 3600 900 604800 300\n@ IN NS ns\n'
  for e in "${EXACT_NAMES[@]}"; do printf '%s IN A %s\n' "${e%%:*}" "${e#*:}"; done
  printf '* IN A %s\n' "$WILDCARD_ADDR"
} >"$TMP/$ZONE.zone"
# every 10th line an exact name, the others distinct names under the wildcard
awk -v n="$NAMES" -v zone="$ZONE" -v ex="$(printf '%s ' "${EXACT_NAMES[@]%%:*}")" 'BEGIN {
  k = split(ex, e, " ")
  for (i = 0; i < n; i++) {
    if (i % 10 == 9) print e[int(i / 10) % k + 1] "." zone " A"
    else printf "h%07d.%s A\n", i, zone
  } }' >"$TMP/queries.txt"

# ---------------------------------------------------------------- servers
start_gatehouse() {
  local e
  {
    echo "dns:"
    echo "  listen: [\"$HOST:${PORT[gatehouse]}\"]"
    echo "  zones:"
    echo "    - name: $ZONE"
    echo "      records:"
    for e in "${EXACT_NAMES[@]}"; do echo "        - {name: ${e%%:*}, type: A, value: ${e#*:}}"; done
    echo "        - {name: \"*\", type: A, value: $WILDCARD_ADDR}"
  } >"$TMP/gatehouse.yaml"
  start gatehouse "$TMP/gatehouse.log" "$GATEHOUSE" run -c "$TMP/gatehouse.yaml" --threads 1 --log warn --no-watch
}
start_dnsmasq() {
  local e
  local -a hr=()
  for e in "${EXACT_NAMES[@]}"; do hr+=("--host-record=${e%%:*}.$ZONE,${e#*:}"); done
  # --address=/zone/addr answers the zone and every name under it: dnsmasq's wildcard.
  # --host-record names are answered first. --cache-size stays at its default (150).
  start dnsmasq "$TMP/dnsmasq.log" dnsmasq --keep-in-foreground --conf-file=/dev/null \
    --listen-address="$HOST" --bind-interfaces --port="${PORT[dnsmasq]}" --no-resolv --no-hosts \
    --pid-file= --log-facility=- --address="/$ZONE/$WILDCARD_ADDR" "${hr[@]}"
}
start_unbound() {
  mkdir -p "$TMP/unbound"
  # auth-zone serves the zone file authoritatively (wildcards included); test. is one of
  # unbound's built-in local zones (RFC 6761), which would answer first: nodefault lifts it.
  cat >"$TMP/unbound/unbound.conf" <<EOF
server:
  interface: $HOST
  port: ${PORT[unbound]}
  do-ip6: no
  num-threads: 1
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$TMP/unbound"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  module-config: "iterator"
  access-control: 127.0.0.0/8 allow
  local-zone: "test." nodefault
remote-control:
  control-enable: no
auth-zone:
  name: "$ZONE."
  zonefile: "$TMP/$ZONE.zone"
  for-downstream: yes
  for-upstream: no
  fallback-enabled: no
EOF
  start unbound "$TMP/unbound.log" unbound -d -c "$TMP/unbound/unbound.conf"
}
start_knot() {
  mkdir -p "$TMP/knot"
  cat >"$TMP/knot/knot.conf" <<EOF
server:
  rundir: "$TMP/knot"
  listen: $HOST@${PORT[knot]}
  udp-workers: 1
  tcp-workers: 1
  background-workers: 1
control:
  listen: "$TMP/knot/knot.sock"
database:
  storage: "$TMP/knot"
log:
  - target: stderr
    any: warning
zone:
  - domain: $ZONE
    file: "$TMP/$ZONE.zone"
EOF
  start knot "$TMP/knot.log" knotd -c "$TMP/knot/knot.conf"
}

declare -A VERSION=()
if [[ -n ${GATEHOUSE_BIN:-} ]]; then
  VERSION[gatehouse]="gatehouse $GATEHOUSE_BIN (given; the repo is at ${GH_COMMIT:-?}, the binary may be older)"
else
  VERSION[gatehouse]="gatehouse built by this run from the tree at ${GH_COMMIT:-?}"
fi
VERSION[dnsmasq]=$(dnsmasq --version 2>/dev/null | awk 'NR == 1 { print $1, $2, $3; exit }')
command -v unbound >/dev/null 2>&1 && VERSION[unbound]="unbound $(unbound -V 2>/dev/null | awk '/^Version/ { print $2; exit }')"
command -v knotd >/dev/null 2>&1 && VERSION[knot]="knotd $(knotd -V 2>/dev/null | awk '{ print $NF; exit }')"
DNSPERF_VERSION=$(dnsperf -h 2>&1 | awk '/^Version/ { print $2; exit }')

for s in "${SERVER_LIST[@]}"; do "start_$s"; done
for s in "${SERVER_LIST[@]}"; do wait_ready "$s"; done
# every thread on SERVER_CPU: some servers set their own affinity (knotd pins its UDP workers
# to CPUs of its choosing, one of them onto dnsperf's CPU), so the whole thread group is
# pinned again now that it is up, and checked
for s in "${SERVER_LIST[@]}"; do
  taskset -a -p -c "$SERVER_CPU" "${PID_OF[$s]}" >/dev/null || die "taskset -a -p $SERVER_CPU ${PID_OF[$s]} ($s) failed"
  for t in /proc/"${PID_OF[$s]}"/task/*; do
    a=$(awk '/^Cpus_allowed_list/ { print $2 }' "$t/status" 2>/dev/null || true)
    [[ -z $a || $a == "$SERVER_CPU" ]] || die "$s thread ${t##*/} runs on CPUs $a, not $SERVER_CPU"
  done
done
log "checking answers (dig)"
for s in "${SERVER_LIST[@]}"; do check_answers "$s"; done

# warm-up: one short run each (not counted)
for s in "${SERVER_LIST[@]}"; do
  taskset -c "$LOAD_CPU" dnsperf -s "$HOST" -p "${PORT[$s]}" -d "$TMP/queries.txt" -l 1 -c "$CLIENTS" -q "$OUTSTANDING" \
    >"$TMP/warmup-$s.txt" 2>&1 || die "dnsperf warm-up against $s failed"
done

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
read -r B0 S0 < <(machine_ticks); T0=$(awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i; print t; exit }' /proc/stat)
sleep 1
read -r B1 S1 < <(machine_ticks); T1=$(awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i; print t; exit }' /proc/stat)
BUSY_BEFORE=$(awk -v b=$((B1 - B0 + S1 - S0)) -v t=$((T1 - T0)) 'BEGIN { printf "%.0f", t ? 100 * b / t : 0 }')
log "machine busy ${BUSY_BEFORE}% before measuring (load average $LOAD_BEFORE)"

for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
  log "round $ROUND/$ROUNDS: dnsperf -l $DURATION -c $CLIENTS -q $OUTSTANDING${MAX_QPS:+ -Q $MAX_QPS}"
  for s in "${SERVER_LIST[@]}"; do measure "$s" "$ROUND"; done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
summarize

# optional: where Gatehouse spends its time under the same load
PROFILE_TXT=""
if [[ $PROFILE == 1 && -n ${PID_OF[gatehouse]:-} ]]; then
  if command -v perf >/dev/null 2>&1; then
    wait_quiet
    log "profiling gatehouse: perf record -e cpu-clock -g during one more ${DURATION}s run"
    perf record -e cpu-clock -g -o "$TMP/perf.data" -p "${PID_OF[gatehouse]}" -- sleep $((DURATION + 1)) \
      >"$TMP/perf-record.log" 2>&1 &
    PERF_PID=$!
    PIDS+=("$PERF_PID")
    sleep 0.5
    taskset -c "$LOAD_CPU" dnsperf -s "$HOST" -p "${PORT[gatehouse]}" -d "$TMP/queries.txt" -l "$DURATION" \
      -c "$CLIENTS" -q "$OUTSTANDING" ${MAX_QPS:+-Q "$MAX_QPS"} >"$TMP/dnsperf-profile.txt" 2>&1 || true
    wait "$PERF_PID" || true
    perf report -i "$TMP/perf.data" --no-children --sort sym --stdio -g none --percent-limit 1 \
      >"$TMP/perf-report.txt" 2>/dev/null || true
    PROFILE_TXT=$(grep -E '^ +[0-9.]+%' "$TMP/perf-report.txt" | head -25 || true)
  else
    log "WARNING: perf not installed: no profile"
  fi
fi

# ---------------------------------------------------------------- report
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
report() {
  local s gh=gatehouse dm=dnsmasq
  echo "# Gatehouse DNS benchmark (bench/dns.sh)"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "- runs: ${DURATION}s per dnsperf run, $ROUNDS round(s), median reported (lost: sum over rounds; max latency: highest of any round)"
  echo "- machine: $(nproc) CPUs, ${CPU_MODEL:-?}; kernel $(uname -r)"
  echo "- cores: $CORE_NOTE"
  echo "- load: dnsperf $DNSPERF_VERSION, \`dnsperf -l $DURATION -c $CLIENTS -q $OUTSTANDING${MAX_QPS:+ -Q $MAX_QPS}\` over UDP, no EDNS, $NAMES names in the input file (9 in 10 distinct names under the wildcard, 1 in 10 one of $(printf '%s ' "${EXACT_NAMES[@]%%:*}" | sed 's/ $//' | sed 's/ /, /g'))"
  echo "- zone: \`$ZONE\`, SOA, NS, $((${#EXACT_NAMES[@]})) exact A records and \`*.$ZONE A $WILDCARD_ADDR\`; no forwarding anywhere"
  echo "- servers, one worker each, pinned to CPU $SERVER_CPU:"
  for s in "${SERVER_LIST[@]}"; do
    case $s in
      gatehouse) echo "  - ${VERSION[$s]}: \`gatehouse run -c FILE --threads 1 --log warn --no-watch\`, a config with only a \`dns:\` section" ;;
      dnsmasq) echo "  - ${VERSION[$s]}: \`--address=/$ZONE/$WILDCARD_ADDR\` (its wildcard) and \`--host-record\` for the exact names, \`--no-resolv --no-hosts\`, default \`--cache-size\`; single-threaded" ;;
      unbound) echo "  - ${VERSION[$s]}: \`num-threads: 1\`, \`module-config: iterator\`, the zone file as an \`auth-zone\` (for-downstream)" ;;
      knot) echo "  - ${VERSION[$s]}: \`udp-workers: 1\`, \`tcp-workers: 1\`, \`background-workers: 1\`, the zone file" ;;
    esac
  done
  echo "- checks before measuring (dig): $(for s in "${SERVER_LIST[@]}"; do printf '%s: %s; ' "${LABEL[$s]}" "${CHECK[$s]}"; done | sed 's/; $//')"
  echo "- other work on the machine: ${BUSY_BEFORE}% busy just before measuring; load average before/after: $LOAD_BEFORE / $LOAD_AFTER"
  echo
  echo "| server | queries/s | lost | avg latency ms | max latency ms | server CPU% | queries/s per server core | dnsperf CPU% | other CPU% | response bytes |"
  echo "|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for s in "${SERVER_LIST[@]}"; do
    printf '| %s | %s | %s / %s | %s | %s | %s | %s | %s | %s | %s |\n' "${LABEL[$s]}" "${R[$s.qps]}" "${R[$s.lost]}" "${R[$s.sent]}" \
      "${R[$s.avg]}" "${R[$s.max]}" "${R[$s.cpu]}" "$(per_core "${R[$s.qps]}" "${R[$s.cpu]}")" "${R[$s.lcpu]}" "${R[$s.oth]}" "${R[$s.resp]}"
  done
  if [[ -n ${R[$gh.qps]:-} && -n ${R[$dm.qps]:-} ]]; then
    printf '| Gatehouse / dnsmasq | %s |  | %s | %s |  | %s |  |  |  |\n' "$(ratio "${R[$gh.qps]}" "${R[$dm.qps]}")" \
      "$(ratio "${R[$dm.avg]}" "${R[$gh.avg]}")" "$(ratio "${R[$dm.max]}" "${R[$gh.max]}")" \
      "$(ratio "$(per_core "${R[$gh.qps]}" "${R[$gh.cpu]}")" "$(per_core "${R[$dm.qps]}" "${R[$dm.cpu]}")")"
  fi
  echo
  echo "Per round (queries/s; server CPU%):"
  echo
  for s in "${SERVER_LIST[@]}"; do
    echo "- ${LABEL[$s]}: ${RAW[$s.qps]% }; ${RAW[$s.cpu]% }"
  done
  echo
  echo "Notes:"
  echo
  echo "- lost = queries without an answer within dnsperf's timeout (5 s), over all rounds (lost / sent)."
  echo "- Latency is dnsperf's, from sending a query to reading its answer, with $OUTSTANDING queries in flight: mostly queueing (about queries in flight / queries/s)."
  echo "- Ratio row: >1 means Gatehouse is better (queries/s and per core: Gatehouse / dnsmasq; latency: dnsmasq / Gatehouse)."
  echo "- server CPU% is the server process's CPU time (all threads) over the run, 100 = one core; other CPU% = CPU taken by processes not started here, plus steal (% of one core, median)."
  local low=() client=()
  for s in "${SERVER_LIST[@]}"; do
    [[ ${R[$s.cpu]} == NA || ${R[$s.lcpu]} == NA ]] && continue
    if [[ ${R[$s.cpu]} -lt 95 && ${R[$s.lcpu]} -ge 95 ]]; then
      client+=("${LABEL[$s]} ${R[$s.cpu]}%")
    elif [[ ${R[$s.cpu]} -lt 90 ]]; then
      low+=("${LABEL[$s]} ${R[$s.cpu]}%")
    fi
  done
  if [[ ${#client[@]} -gt 0 ]]; then
    echo "- dnsperf's core was full while these servers had time to spare (${client[*]}): their queries/s is dnsperf's ceiling on this machine, not theirs; the per-core column estimates what they could do."
  fi
  if [[ ${#low[@]} -gt 0 ]]; then
    echo "- Some servers used under 90% of their core (${low[*]}) with dnsperf's core not full either: other work or wake-up latency was the limit; compare the per-core column as well."
  fi
  if [[ ${#NOISE_WARN[@]} -gt 0 ]]; then
    echo "- WARNING: other work took at least ${NOISE_PCT}% of a core during: ${NOISE_WARN[*]}, after up to $RETRIES repeats."
  fi
  if [[ $BUSY_BEFORE -ge 20 && $WAIT_QUIET == 0 ]]; then
    echo "- WARNING: the machine was ${BUSY_BEFORE}% busy just before measuring (load average $LOAD_BEFORE): figures are noisy."
  fi
  if [[ -n ${R[$gh.qps]:-} && -n ${R[$dm.qps]:-} ]]; then
    local verdict
    verdict=$(awk -v a="${R[$gh.qps]}" -v b="${R[$dm.qps]}" -v t="$TARGET_RATIO" -v lost="${R[$gh.lost]}" 'BEGIN {
      r = a / b; ok = (r >= t && lost == 0)
      printf "%s (%.2fx dnsmasq'"'"'s queries/s, %s lost)", ok ? "met" : "not met", r, lost }')
    echo "- Target (at least ${TARGET_RATIO}x dnsmasq's queries/s with no lost queries): $verdict."
  fi
  if [[ -n $PROFILE_TXT ]]; then
    echo
    echo "Gatehouse profile (\`perf record -e cpu-clock -g\`, one ${DURATION}s run, \`perf report --no-children --sort sym\`, top symbols):"
    echo
    echo '```'
    echo "$PROFILE_TXT"
    echo '```'
  fi
}
report | tee "$OUT_FILE"
log "report written to $OUT_FILE"
