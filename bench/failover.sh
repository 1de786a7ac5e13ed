#!/usr/bin/env bash
# Failover benchmark: how long a client is without its virtual IP after the VRRP master is
# killed (SIGKILL: a crash, nothing handed over), Gatehouse vs keepalived, same topology, same
# run. Network namespaces only: a "switch" namespace with a bridge, gw1 (priority 150), gw2
# (priority 100) and a client, each on the bridge through a veth pair, 192.0.2.0/24, no route
# out; nothing touches the host's own interfaces.
#
# Each gateway serves VIP:80 with a name: Gatehouse proxies it to a python3 backend on
# 127.0.0.1:8080 that writes the node's name; on a keepalived node the backend itself listens
# on 0.0.0.0:80. A python3 prober in the client namespace connects to VIP:80 every 10 ms
# (50 ms timeout) and listens to the VRRP adverts on the LAN; once gw1 answers steadily (and
# 1 s more) it SIGKILLs gw1 (keepalived: its VRRP process, then the parent) right after one of
# gw1's adverts (the worst moment: the backup waits a whole Master_Down_Interval), and reports
# the time from the kill, and from gw1's last advert, to the end of the first answer from gw2.
# On a keepalived node the backend is killed with keepalived (the node crashed): otherwise it
# would go on answering on the VIP that the killed keepalived leaves on gw1's interface.
# gw1 is then restarted (it preempts) for the next round.
#
# Series: keepalived and Gatehouse at advert interval 1 s, then both at 100 ms, then Gatehouse
# with its defaults (200 ms). Median and max per series.
#
# Usage: bench/failover.sh [--out FILE] [--help]   (root: ip netns)
# Environment:
#   ROUNDS          kills per series (default 5)
#   GATEHOUSE_BIN   use this gatehouse binary instead of `cargo build --release -p gatehouse`
#   KEEPALIVED      keepalived binary (default /usr/sbin/keepalived; missing: Gatehouse only)
#   INTERVALS       advert intervals compared, in ms (default "1000 100")
#   KILL_AT         advert (default): kill right after an advert; random: at a random moment
#                   of the advert cycle (1 s + uniform(0, interval) after gw1 answers steadily)
#   KEEP_TMP        1 = keep the temp dir (configs, logs) after the run
# See bench/README.md ("Failover").
set -euo pipefail
set -o errtrace
trap 'printf "[failover] ERROR: line %s: %s failed\n" "$LINENO" "$BASH_COMMAND" >&2' ERR

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)

OUT_FILE=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) [[ $# -ge 2 ]] || { echo "--out needs a file" >&2; exit 2; }; OUT_FILE=$2; shift 2 ;;
    --out=*) OUT_FILE=${1#--out=}; shift ;;
    -h|--help) sed -n '2,31p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
done
ROUNDS=${ROUNDS:-5}
KEEPALIVED=${KEEPALIVED:-/usr/sbin/keepalived}
INTERVALS=${INTERVALS:-1000 100}
KEEP_TMP=${KEEP_TMP:-0}
KILL_AT=${KILL_AT:-advert}
[[ $KILL_AT == advert || $KILL_AT == random ]] || { echo "KILL_AT must be advert or random" >&2; exit 2; }
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 && $ROUNDS -le 50 ]] || { echo "ROUNDS must be 1..50" >&2; exit 2; }
for i in $INTERVALS; do
  [[ $i =~ ^[0-9]+$ && $i -ge 10 && $((i % 10)) -eq 0 ]] \
    || { echo "INTERVALS: $i is not a multiple of 10 ms" >&2; exit 2; }
done
[[ $(id -u) == 0 ]] || { echo "needs root (ip netns)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "needs python3" >&2; exit 2; }

log() { printf '[failover] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

VIP=192.0.2.100
GW1_IP=192.0.2.10
GW2_IP=192.0.2.11
VRID=51
TAG="ghb-$$"
NS_SW="$TAG-sw" NS_GW1="$TAG-gw1" NS_GW2="$TAG-gw2" NS_CL="$TAG-client"
ALL_NS=("$NS_GW1" "$NS_GW2" "$NS_CL" "$NS_SW")
WORK=$(mktemp -d /tmp/gatehouse-failover.XXXXXX)
PIDS=()

cleanup() {
  local rc=$?
  set +e
  trap - ERR
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  # Anything still running in our namespaces was started by this script (keepalived's VRRP
  # process, say): end it, or the namespace outlives its name.
  for ns in "${ALL_NS[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
  done
  for ns in "${ALL_NS[@]}"; do ip netns del "$ns" 2>/dev/null; done
  if [[ $KEEP_TMP == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT INT TERM

# --- binaries ---------------------------------------------------------------------------------
if [[ -n ${GATEHOUSE_BIN:-} ]]; then
  GH_BIN=$GATEHOUSE_BIN
else
  log "building gatehouse (cargo build --release -p gatehouse)"
  (cd "$REPO_DIR" && cargo build --release -p gatehouse) >&2 || die "cargo build failed"
  GH_BIN="$REPO_DIR/target/release/gatehouse"
fi
[[ -x $GH_BIN ]] || die "no gatehouse binary at $GH_BIN"
HAVE_KA=1
if [[ ! -x $KEEPALIVED ]]; then
  log "WARNING: $KEEPALIVED not found: Gatehouse only"
  HAVE_KA=0
fi

# --- helpers run inside the namespaces ---------------------------------------------------------
cat >"$WORK/backend.py" <<'EOF'
import socket, sys
host, port, name = sys.argv[1], int(sys.argv[2]), (sys.argv[3] + "\n").encode()
s = socket.socket(socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port))
s.listen(256)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    try:
        c.sendall(name)
    except OSError:
        pass
    c.close()
EOF

# prober.py VIP PORT OLD NEW OLD_IP NEW_IP NEW_MAC KILL_AT INTERVAL_S PID[,PID...]: waits for 5
# answers in a
# row from OLD and 1 s more, then SIGKILLs the pids in order: KILL_AT=advert right after the
# next VRRP advert from OLD_IP (the client is on the LAN and hears them: the worst moment, a
# whole Master_Down_Interval to wait), KILL_AT=random after a further uniform(0, INTERVAL_S).
# Prints "MS FAILED SINCE_ADVERT_MS ADVERT_GAP_MS GARP_MS": ms from the kill to the end of NEW's
# first answer, the attempts in between that NEW did not answer, ms from OLD's last advert to
# that answer, to NEW's first advert (VRRP alone, to the packet), and to NEW's first
# gratuitous ARP for the VIP (from NEW_MAC: when the client can follow).
cat >"$WORK/prober.py" <<'EOF'
import os, random, signal, socket, struct, sys, threading, time
host, port, old, new = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
old_ip, new_ip, new_mac = sys.argv[5], sys.argv[6], bytes.fromhex(sys.argv[7].replace(":", ""))
kill_at, interval = sys.argv[8], float(sys.argv[9])
pids = [int(p) for p in sys.argv[10].split(",") if p]
PERIOD, TIMEOUT, THREADS = 0.010, 0.050, 8
samples, lock, stop = [], threading.Lock(), False
adverts = []  # receive times of OLD's adverts (priority > 0)
new_adverts = []  # and of NEW's
garps = []  # receive times of ARP packets from NEW_MAC that announce the VIP
advert_seen = threading.Condition()

def listen_adverts():
    r = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
    mreq = struct.pack("4s4si", socket.inet_aton("224.0.0.18"), socket.inet_aton("0.0.0.0"),
                       socket.if_nametoindex("eth0"))
    r.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    old_src, new_src = socket.inet_aton(old_ip), socket.inet_aton(new_ip)
    while True:
        data = r.recv(2048)
        at = time.monotonic()
        ihl = (data[0] & 0x0F) * 4
        if len(data) <= ihl + 2 or data[ihl + 2] == 0:
            continue
        with advert_seen:
            if data[12:16] == old_src:
                adverts.append(at)
            elif data[12:16] == new_src:
                new_adverts.append(at)
            advert_seen.notify_all()

def listen_arp():
    r = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
    r.bind(("eth0", 0))
    vip = socket.inet_aton(host)
    while True:
        data = r.recv(2048)
        at = time.monotonic()
        # Ethernet (14) + ARP: sender MAC at 8, sender IP at 14.
        if data[22:28] == new_mac and data[28:32] == vip:
            with advert_seen:
                garps.append(at)

def probe():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    try:
        s.connect((host, port))
        data = b""
        while len(data) < 256:
            chunk = s.recv(256)
            if not chunk:
                break
            data += chunk
        lines = data.decode(errors="replace").split()
        return lines[0] if lines else None
    except OSError:
        return None
    finally:
        s.close()

def worker(k, start):
    nxt = start + k * PERIOD
    while not stop:
        now = time.monotonic()
        if nxt > now:
            time.sleep(nxt - now)
        t0 = time.monotonic()
        answer = probe()
        t1 = time.monotonic()
        with lock:
            samples.append((t0, t1, answer))
        while nxt <= t1:
            nxt += PERIOD * THREADS

def wait(pred, since, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with lock:
            snap = sorted((s for s in samples if s[0] >= since), key=lambda s: s[0])
        found = pred(snap)
        if found is not None:
            return found
        time.sleep(0.002)
    return None

def steady(snap):
    run = 0
    for s in snap:
        run = run + 1 if s[2] == old else 0
        if run == 5:
            return s[1]
    return None

threading.Thread(target=listen_adverts, daemon=True).start()
threading.Thread(target=listen_arp, daemon=True).start()
start = time.monotonic()
for k in range(THREADS):
    threading.Thread(target=worker, args=(k, start), daemon=True).start()
if wait(steady, start, 60) is None:
    print("error: %s never answered steadily" % old)
    sys.exit(1)
time.sleep(1)
if kill_at == "advert":
    with advert_seen:
        seen = len(adverts)
        if not advert_seen.wait_for(lambda: len(adverts) > seen, timeout=10 * interval + 5):
            print("error: no VRRP advert from %s" % old_ip)
            sys.exit(1)
else:
    time.sleep(random.uniform(0, interval))
killed = time.monotonic()
for p in pids:
    os.kill(p, signal.SIGKILL)
first = wait(lambda snap: next((s[1] for s in snap if s[2] == new), None), killed, 60)
if first is None:
    print("error: %s never answered after the kill" % new)
    sys.exit(1)
with lock:
    failed = sum(1 for s in samples if killed <= s[0] and s[1] < first and s[2] != new)
with advert_seen:
    last = max((t for t in adverts if t <= killed), default=killed)
    taken = min((t for t in new_adverts if t > killed), default=first)
    garp = min((t for t in garps if t > killed), default=first)
print("%.0f %d %.0f %.1f %.1f" % ((first - killed) * 1000, failed, (first - last) * 1000,
                                  (taken - last) * 1000, (garp - last) * 1000))
EOF

# --- topology -----------------------------------------------------------------------------------
log "namespaces: $NS_SW (bridge), $NS_GW1, $NS_GW2, $NS_CL"
ip netns add "$NS_SW"
ip -n "$NS_SW" link set lo up
ip netns exec "$NS_SW" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip -n "$NS_SW" link add br0 type bridge mcast_snooping 0
ip -n "$NS_SW" link set br0 up
n=10
for ns in "$NS_GW1" "$NS_GW2" "$NS_CL"; do
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
  ip -n "$NS_SW" link add "p$n" type veth peer name eth0 netns "$ns"
  ip -n "$NS_SW" link set "p$n" master br0
  ip -n "$NS_SW" link set "p$n" up
  ip -n "$ns" addr add "192.0.2.$n/24" dev eth0
  ip -n "$ns" link set eth0 up
  n=$((n + 1))
done

GW2_MAC=$(ip -n "$NS_GW2" -br link show dev eth0 | awk '{ print $3 }')

# --- nodes ----------------------------------------------------------------------------------------
# wait_line FILE TEXT SECONDS
wait_line() {
  local i
  for ((i = 0; i < $3 * 100; i++)); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.01
  done
  return 1
}

# start_backend NS ADDRESS PORT NAME -> prints the pid
start_backend() {
  local out="$WORK/backend-$1-$3.log"
  ip netns exec "$1" python3 "$WORK/backend.py" "$2" "$3" "$4" >"$out" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  wait_line "$out" ready 10 || die "backend $4 did not start: $(cat "$out")"
  echo "$pid"
}

# start_gatehouse NS NAME PRIORITY INTERVAL_MS|default -> prints the pid
start_gatehouse() {
  local cfg="$WORK/gatehouse-$2.yaml" out="$WORK/gatehouse-$2-$RANDOM.log" interval=""
  [[ $4 == default ]] || interval="    advertInterval: ${4}ms"
  cat >"$cfg" <<EOF
gateways:
  - name: web
    addresses: ["$VIP"]
    listeners:
      - {name: http, port: 80, backend: local}
backends:
  - name: local
    endpoints: ["127.0.0.1:8080"]
vrrp:
  - name: lan
    interface: eth0
    vrid: $VRID
    priority: $3
$interval
    addresses: ["$VIP/24"]
EOF
  ip netns exec "$1" "$GH_BIN" run -c "$cfg" --log info >"$out" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  wait_line "$out" "gatehouse is running" 20 || die "gatehouse $2 did not start: $(tail -20 "$out")"
  echo "$pid"
}

# start_keepalived NS NAME PRIORITY INTERVAL_MS -> prints "VRRP_PID,PARENT_PID"
start_keepalived() {
  local dir="$WORK/keepalived-$2-$RANDOM"
  mkdir -p "$dir"
  cat >"$dir/keepalived.conf" <<EOF
global_defs {
    router_id $2
    vrrp_version 3
}
vrrp_instance lan {
    state BACKUP
    interface eth0
    virtual_router_id $VRID
    priority $3
    advert_int $(awk "BEGIN { print $4 / 1000 }")
    virtual_ipaddress {
        $VIP/24
    }
}
EOF
  ip netns exec "$1" "$KEEPALIVED" --dont-fork --log-console --log-detail --no-syslog --vrrp \
    --dont-respawn --use-file "$dir/keepalived.conf" --pid "$dir/keepalived.pid" \
    --vrrp_pid "$dir/vrrp.pid" >"$dir/log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  local i
  for ((i = 0; i < 1000; i++)); do
    [[ -s $dir/vrrp.pid ]] && break
    sleep 0.01
  done
  [[ -s $dir/vrrp.pid ]] || die "keepalived $2 did not start: $(tail -20 "$dir/log")"
  wait_line "$dir/log" "Entering BACKUP STATE" 10 || die "keepalived $2 did not start: $(tail -20 "$dir/log")"
  local child
  child=$(tr -d '[:space:]' <"$dir/vrrp.pid")
  PIDS+=("$child")
  echo "$child,$pid"
}

# stop PID[,PID...]: SIGKILL and wait until they are gone
stop_pids() {
  local p
  for p in ${1//,/ }; do kill -KILL "$p" 2>/dev/null || true; done
  for p in ${1//,/ }; do
    while kill -0 "$p" 2>/dev/null; do sleep 0.01; done
  done
}

# A crashed master leaves the VIP on its interface; start every node without it.
clear_vip() {
  local ns
  for ns in "$@"; do ip -n "$ns" addr del "$VIP/24" dev eth0 2>/dev/null || true; done
}

# series IMPL INTERVAL_MS|default: per-round lines on stderr; sets RESULT="median max all"
series() {
  local impl=$1 interval=$2 gw2 gw1 b1="" b2 r out ms failed since gap garp
  local times=() gaps=() garps=()
  local interval_s
  if [[ $interval == default ]]; then interval_s=0.2; else interval_s=$(awk "BEGIN { print $interval / 1000 }"); fi
  clear_vip "$NS_GW1" "$NS_GW2"
  ip -n "$NS_CL" neigh flush all
  if [[ $impl == gatehouse ]]; then
    b1=$(start_backend "$NS_GW1" 127.0.0.1 8080 gw1)
    b2=$(start_backend "$NS_GW2" 127.0.0.1 8080 gw2)
    gw2=$(start_gatehouse "$NS_GW2" gw2 100 "$interval")
  else
    b2=$(start_backend "$NS_GW2" 0.0.0.0 80 gw2)
    gw2=$(start_keepalived "$NS_GW2" gw2 100 "$interval")
  fi
  for ((r = 1; r <= ROUNDS; r++)); do
    clear_vip "$NS_GW1"
    if [[ $impl == gatehouse ]]; then
      gw1=$(start_gatehouse "$NS_GW1" gw1 150 "$interval")
    else
      # The node's service dies with keepalived: killed alone, keepalived leaves the VIP on
      # gw1 and the backend there would go on answering on it.
      b1=$(start_backend "$NS_GW1" 0.0.0.0 80 gw1)
      gw1="$(start_keepalived "$NS_GW1" gw1 150 "$interval"),$b1"
    fi
    out=$(ip netns exec "$NS_CL" python3 "$WORK/prober.py" "$VIP" 80 gw1 gw2 "$GW1_IP" \
      "$GW2_IP" "$GW2_MAC" "$KILL_AT" "$interval_s" "$gw1") || die "$impl $interval round $r: $out"
    read -r ms failed since gap garp <<<"$out"
    stop_pids "$gw1"
    log "$impl, advert interval $interval: round $r: answered $ms ms after the kill," \
      "$since ms after gw1's last advert ($failed attempts failed); after gw1's last" \
      "advert: gw2's first $gap ms, its first gratuitous ARP $garp ms"
    times+=("$ms")
    gaps+=("$gap")
    garps+=("$garp")
  done
  stop_pids "$gw2,$b2${b1:+,$b1}"
  clear_vip "$NS_GW1" "$NS_GW2"
  RESULT="$(stats "${gaps[@]}") $(stats "${garps[@]}") $(stats "${times[@]}")"
}

# stats N... -> "median max all" (all sorted, comma-separated)
stats() {
  printf '%s\n' "$@" | sort -n | awk '
    { v[NR] = $1 }
    END {
      med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      all = v[1]; for (i = 2; i <= NR; i++) all = all "," v[i]
      printf "%s %s %s\n", med, v[NR], all
    }'
}

# master_down INTERVAL_MS PRIORITY -> RFC 5798 Master_Down_Interval in ms
master_down() { awk "BEGIN { printf \"%.0f\", 3 * $1 + (256 - $2) * $1 / 256 }"; }

ROWS=()
row() { # IMPL LABEL INTERVAL_MS, from RESULT
  local amed amax aall gmed gmax gall med max all
  read -r amed amax aall gmed gmax gall med max all <<<"$RESULT"
  ROWS+=("| $1 | $2 | $(master_down "$3" 100) | $amed | $amax | $gmed | $med | $max | ${all//,/ } |")
}
for i in $INTERVALS; do
  if [[ $HAVE_KA == 1 ]]; then
    log "keepalived, advert interval $i ms"
    series keepalived "$i"
    row keepalived "advert_int $(awk "BEGIN { print $i / 1000 }")" "$i"
  fi
  log "Gatehouse, advertInterval $i ms"
  series gatehouse "$i"
  row Gatehouse "advertInterval: ${i}ms" "$i"
done
log "Gatehouse, defaults (advertInterval 200ms)"
series gatehouse default
row Gatehouse "defaults (200ms)" 200

REPORT=$(
  echo "Failover after SIGKILL of the master (killed: $KILL_AT), $ROUNDS rounds per row, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "($("$GH_BIN" --version 2>/dev/null | head -1), commit $(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown); $("$KEEPALIVED" --version 2>&1 | head -1))"
  echo
  echo "| node software | setting | Master_Down_Interval, priority 100 (ms) | gw1's last advert -> gw2's first advert, median (ms) | max (ms) | gw1's last advert -> gw2's first gratuitous ARP, median (ms) | kill -> client answered, median (ms) | max (ms) | kill -> answered, all rounds (ms) |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---|"
  printf '%s\n' "${ROWS[@]}"
)
echo "$REPORT"
[[ -z $OUT_FILE ]] || echo "$REPORT" >"$OUT_FILE"
