#!/usr/bin/env bash
# ceph-rgw.sh start|stop - a throw-away single-node Ceph cluster with a RADOS Gateway (a real S3
# API) on loopback, for integration tests: one ceph-mon, one ceph-osd (memstore = RAM, or bluestore
# on a sparse file), one radosgw (beast), one S3 user with fixed keys. No systemd, no cephx, no
# ceph-mgr (RGW does not need one); everything lives under one data directory and binds 127.0.0.1.
#
# Needs (Debian 12): apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd ceph-common curl
#
#   start  prints KEY=VALUE lines on stdout (S3_ENDPOINT, S3_ACCESS_KEY, ...) and writes them to
#          $CEPH_RGW_DIR/s3.env; progress goes to stderr. ~2 s.
#   stop   signals only the PIDs recorded in $CEPH_RGW_DIR/run/*.pid, after checking each is the
#          expected ceph binary started with this dir's ceph.conf; then removes the dir. ~0.4 s.
#   rgw-stop / rgw-start  stop or start only the radosgw daemon of a running cluster, keeping the
#          data: an S3 outage and its recovery, for fault tests.
#
# Environment (all optional):
#   CEPH_RGW_DIR          data dir, wiped and re-created on start  (default ${TMPDIR:-/tmp}/ceph-rgw)
#   CEPH_RGW_PORT         S3 port on 127.0.0.1                      (default 7480)
#   CEPH_MON_PORT         mon msgr2 port on 127.0.0.1               (default 3300)
#   CEPH_OSD_OBJECTSTORE  memstore | bluestore                      (default memstore)
#   CEPH_OSD_SIZE_GB      memstore capacity / bluestore file size   (default 8)
#   CEPH_RGW_LC_THREADS   true = run lifecycle (expiry) workers     (default false)
#   CEPH_START_TIMEOUT    seconds to wait for each start step       (default 120)
#   S3_ACCESS_KEY / S3_SECRET_KEY / S3_USER  fixed S3 credentials   (defaults below)
#   CEPH_RGW_KEEP_DATA=1  stop keeps the data dir (logs)
#   CEPH_STOP_GRACE       seconds before SIGKILL on stop            (default 15)
#   CEPH_STOP_FAST=1      stop SIGKILLs at once (the data is throw-away)
set -euo pipefail

DIR="${CEPH_RGW_DIR:-${TMPDIR:-/tmp}/ceph-rgw}"
MARKER="$DIR/.ceph-rgw-test-cluster"
T0=$(date +%s%3N)

log() { local ms=$(( $(date +%s%3N) - T0 )); printf '[ceph-rgw %3d.%03ds] %s\n' $((ms / 1000)) $((ms % 1000)) "$*" >&2; }
# alive PID: exists and is not a zombie (an exited daemon may stay a zombie until init reaps it, ~1-2 s)
alive() { local st; st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1); [ -n "$st" ] && [ "$st" != Z ]; }

# ---------------------------------------------------------------------------------------- stop
STOP_LEFT=0
# stop_group NAME:COMM ... : SIGTERM each (if it is ours), wait for all, SIGKILL after GRACE seconds
stop_group() {
  local -a pids=() names=()
  local spec name comm pf pid any i=0 k j
  for spec in "$@"; do
    name=${spec%%:*}; comm=${spec#*:}; pf="$DIR/run/$name.pid"
    [ -e "$pf" ] || continue
    pid=$(cat "$pf")
    if [ -z "$pid" ] || ! alive "$pid"; then rm -f "$pf"; continue; fi
    # guard against PID reuse: must be the expected binary started with our ceph.conf
    if [ "$(cat /proc/"$pid"/comm 2>/dev/null)" != "$comm" ] || ! tr '\0' ' ' < /proc/"$pid"/cmdline | grep -qF "$DIR/ceph.conf"; then
      log "$name: pid $pid is not our $comm; leaving it alone"; rm -f "$pf"; continue
    fi
    kill -TERM "$pid" 2>/dev/null || true; pids+=("$pid"); names+=("$name")
  done
  [ "${#pids[@]}" -gt 0 ] || return 0
  while :; do
    any=0; for pid in "${pids[@]}"; do if alive "$pid"; then any=1; fi; done
    if [ "$any" = 0 ] || [ $i -ge $((GRACE * 10)) ]; then break; fi
    sleep 0.1; i=$((i + 1))
  done
  for k in "${!pids[@]}"; do
    pid=${pids[$k]}; name=${names[$k]}
    if alive "$pid"; then
      [ "$GRACE" = 0 ] || log "$name (pid $pid) ignored SIGTERM for ${GRACE}s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      j=0; while alive "$pid" && [ $j -lt 50 ]; do sleep 0.1; j=$((j + 1)); done
    fi
    if alive "$pid"; then log "$name (pid $pid) still alive!"; STOP_LEFT=1
    else log "$name (pid $pid) stopped after $((i / 10)).$((i % 10)) s"; rm -f "$DIR/run/$name.pid"; fi
  done
}

do_stop() {
  GRACE="${CEPH_STOP_GRACE:-15}"
  [ "${CEPH_STOP_FAST:-0}" = 1 ] && GRACE=0
  [ -d "$DIR" ] || { log "nothing at $DIR"; return 0; }
  [ -e "$MARKER" ] || { log "$DIR was not made by this script; refusing"; return 1; }
  # one at a time: radosgw hangs on shutdown if the OSD goes first, and the OSD waits 5 s for a
  # missing mon to acknowledge that it is going down
  stop_group rgw:radosgw
  stop_group osd.0:ceph-osd
  stop_group mon.a:ceph-mon
  if [ "$STOP_LEFT" = 0 ] && [ "${CEPH_RGW_KEEP_DATA:-0}" != 1 ]; then rm -rf "$DIR"; log "removed $DIR"; fi
  return "$STOP_LEFT"
}

# --------------------------------------------------------------------------------------- start
OWN_DIR=0   # set once this run has created $DIR; only then does a failure stop daemons in it
die() {
  log "ERROR: $*"
  if [ "$OWN_DIR" = 1 ]; then
    tail -n 5 "$DIR"/log/*.log >&2 2>/dev/null || true
    # stop whatever this run started (by recorded pid), keep the logs
    CEPH_RGW_KEEP_DATA=1 do_stop || true
    log "logs kept in $DIR/log"
  fi
  exit 1
}

do_start() {
  local RGW_PORT="${CEPH_RGW_PORT:-7480}" MON_PORT="${CEPH_MON_PORT:-3300}"
  local OBJECTSTORE="${CEPH_OSD_OBJECTSTORE:-memstore}" SIZE_GB="${CEPH_OSD_SIZE_GB:-8}"
  TIMEOUT="${CEPH_START_TIMEOUT:-120}"
  local S3_USER="${S3_USER:-testuser}"
  local ACCESS_KEY="${S3_ACCESS_KEY:-TESTACCESSKEY0000001}"
  local SECRET_KEY="${S3_SECRET_KEY:-testsecretkey0000000000000000000000000001}"
  local ENDPOINT="http://127.0.0.1:${RGW_PORT}" CONF="$DIR/ceph.conf" b p pf pid

  for b in ceph ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph-authtool curl setsid python3; do
    command -v "$b" >/dev/null || die "missing $b (apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd ceph-common curl)"
  done
  case "$OBJECTSTORE" in memstore|bluestore) ;; *) die "CEPH_OSD_OBJECTSTORE must be memstore or bluestore";; esac

  # refuse to clobber a running cluster; wipe only a directory this script made
  if [ -d "$DIR/run" ]; then
    for pf in "$DIR"/run/*.pid; do
      [ -e "$pf" ] || continue
      pid=$(cat "$pf")
      if [ -n "$pid" ] && alive "$pid"; then die "$(basename "$pf" .pid) still running (pid $pid) in $DIR; run '$0 stop' first"; fi
    done
  fi
  if [ -e "$DIR" ]; then
    if [ -e "$MARKER" ] || [ -z "$(ls -A "$DIR")" ]; then rm -rf "$DIR"
    else die "$DIR exists and was not made by this script; choose another CEPH_RGW_DIR"; fi
  fi
  for p in "$RGW_PORT" "$MON_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then die "port 127.0.0.1:$p already in use"; fi
  done
  mkdir -p "$DIR"/{run,log,mon.a,osd.0,rgw}
  touch "$MARKER"
  OWN_DIR=1

  local FSID; FSID=$(cat /proc/sys/kernel/random/uuid)
  cat > "$CONF" <<EOF
[global]
fsid = $FSID
mon host = v2:127.0.0.1:$MON_PORT
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
keyring = $DIR/keyring
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
crash dir = $DIR/crash
mon data = $DIR/mon.\$id
osd data = $DIR/osd.\$id
rgw data = $DIR/rgw
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
# single mon: commit map changes (pool creation, osd boot) after 50 ms instead of 1 s (start ~13 s -> ~2 s)
paxos propose interval = 0.05
[mon]
mon cluster log file = $DIR/log/cluster.log
[osd]
osd objectstore = $OBJECTSTORE
memstore device bytes = $((SIZE_GB * 1024 * 1024 * 1024))
bluestore block create = true
bluestore block size = $((SIZE_GB * 1024 * 1024 * 1024))
bluestore fsck on mount = false
osd memory target = 939524096
osd failsafe full ratio = 0.99
[client]
# radosgw defaults to ms_mon_client_mode=secure, which needs cephx; with auth none it must be crc
ms mon client mode = crc
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw thread pool size = 64
rgw dns name = 127.0.0.1
rgw enable usage log = false
# deleted data is reclaimed by RGW GC (default: after 2 h) and memstore keeps it in RAM until then
rgw gc obj min wait = 30
rgw gc processor period = 30
# lifecycle workers sleep 5 s between lock attempts and delay shutdown; lifecycle *configuration*
# calls still work, only background expiry is off
rgw enable lc threads = ${CEPH_RGW_LC_THREADS:-false}
EOF
  export CEPH_CONF="$CONF"
  CEPH=(ceph -c "$CONF" --connect-timeout 5)

  # mon
  monmaptool --create --clobber --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_PORT]" "$DIR/monmap" >/dev/null
  ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring" >/dev/null 2>"$DIR/log/mon-mkfs.out" \
    || die "mon mkfs failed: $(cat "$DIR/log/mon-mkfs.out")"
  launch mon.a ceph-mon -c "$CONF" -i a
  wait_for "mon quorum" "${CEPH[@]}" mon stat

  # OSD
  local OSD_UUID OSD_ID; OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
  OSD_ID=$("${CEPH[@]}" osd new "$OSD_UUID")
  [ "$OSD_ID" = 0 ] || die "unexpected osd id '$OSD_ID'"
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$OSD_UUID" >"$DIR/log/osd-mkfs.out" 2>&1 \
    || die "osd mkfs failed: $(tail -5 "$DIR/log/osd-mkfs.out")"
  launch osd.0 ceph-osd -c "$CONF" -i 0
  wait_for "osd.0 up" osd_up

  # RGW (creates its pools on first start)
  launch rgw radosgw -c "$CONF" -n client.rgw.a
  wait_for "rgw http on $ENDPOINT" curl -fsS -o /dev/null --max-time 3 "$ENDPOINT/"

  radosgw-admin -c "$CONF" -n client.admin user create --uid="$S3_USER" --display-name="$S3_USER" \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" > "$DIR/log/user-create.json" 2>"$DIR/log/user-create.err" \
    || die "radosgw-admin user create failed: $(tail -5 "$DIR/log/user-create.err")"
  wait_for "signed S3 ListBuckets as $S3_USER" s3_check "$ENDPOINT" "$ACCESS_KEY" "$SECRET_KEY" "$S3_USER"

  cat > "$DIR/s3.env" <<EOF
S3_ENDPOINT=$ENDPOINT
S3_ACCESS_KEY=$ACCESS_KEY
S3_SECRET_KEY=$SECRET_KEY
S3_REGION=us-east-1
S3_FORCE_PATH_STYLE=true
AWS_ACCESS_KEY_ID=$ACCESS_KEY
AWS_SECRET_ACCESS_KEY=$SECRET_KEY
AWS_REGION=us-east-1
CEPH_RGW_DIR=$DIR
EOF
  log "ready: $ENDPOINT (objectstore=$OBJECTSTORE, data dir $DIR)"
  cat "$DIR/s3.env"
}

# launch NAME cmd...: foreground daemon in its own session (so it outlives our process group), pid from $!
launch() {
  local name=$1; shift
  setsid "$@" -f < /dev/null >> "$DIR/log/$name.out" 2>&1 &
  local pid=$!
  echo "$pid" > "$DIR/run/$name.pid"
  log "started $name (pid $pid)"
}

# wait_for DESCRIPTION cmd...: retry until it succeeds; fail fast if a daemon died
wait_for() {
  local what=$1; shift; local deadline=$(( $(date +%s) + TIMEOUT )) pf
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || die "timed out waiting for $what"
    for pf in "$DIR"/run/*.pid; do alive "$(cat "$pf")" || die "$(basename "$pf" .pid) exited"; done
    sleep 0.2
  done
  log "$what: ok"
}

osd_up() { "${CEPH[@]}" osd stat | grep -q '1 up'; }

# s3_check ENDPOINT ACCESS SECRET USER: a SigV4-signed ListBuckets must answer as that user
# (python3 ships with ceph-common, so no extra dependency)
s3_check() {
  python3 - "$@" <<'PY'
import sys, hmac, hashlib, datetime, urllib.request
ep, ak, sk, uid = sys.argv[1:5]
t = datetime.datetime.now(datetime.timezone.utc)
amz, day = t.strftime('%Y%m%dT%H%M%SZ'), t.strftime('%Y%m%d')
host, ph = ep.split('://', 1)[1], hashlib.sha256(b'').hexdigest()
sh = 'host;x-amz-content-sha256;x-amz-date'
creq = f'GET\n/\n\nhost:{host}\nx-amz-content-sha256:{ph}\nx-amz-date:{amz}\n\n{sh}\n{ph}'
scope = f'{day}/us-east-1/s3/aws4_request'
sts = f'AWS4-HMAC-SHA256\n{amz}\n{scope}\n' + hashlib.sha256(creq.encode()).hexdigest()
k = ('AWS4' + sk).encode()
for m in (day, 'us-east-1', 's3', 'aws4_request'): k = hmac.new(k, m.encode(), hashlib.sha256).digest()
sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
req = urllib.request.Request(ep + '/', headers={'x-amz-date': amz, 'x-amz-content-sha256': ph,
      'Authorization': f'AWS4-HMAC-SHA256 Credential={ak}/{scope}, SignedHeaders={sh}, Signature={sig}'})
body = urllib.request.urlopen(req, timeout=5).read().decode()
sys.exit(0 if f'<ID>{uid}</ID>' in body else 1)
PY
}

do_rgw_stop() {
  GRACE="${CEPH_STOP_GRACE:-15}"
  [ "${CEPH_STOP_FAST:-0}" = 1 ] && GRACE=0
  [ -e "$MARKER" ] || { log "$DIR was not made by this script; refusing"; return 1; }
  stop_group rgw:radosgw
  return "$STOP_LEFT"
}

do_rgw_start() {
  TIMEOUT="${CEPH_START_TIMEOUT:-120}"
  [ -e "$MARKER" ] && [ -e "$DIR/s3.env" ] || die "no running cluster at $DIR"
  local ENDPOINT; ENDPOINT=$(sed -n 's/^S3_ENDPOINT=//p' "$DIR/s3.env")
  launch rgw radosgw -c "$DIR/ceph.conf" -n client.rgw.a
  wait_for "rgw http on $ENDPOINT" curl -fsS -o /dev/null --max-time 3 "$ENDPOINT/"
}

case "${1:-}" in
  start) do_start ;;
  stop) set +e; do_stop; exit $? ;;
  rgw-stop) set +e; do_rgw_stop; exit $? ;;
  rgw-start) do_rgw_start ;;
  *) echo "usage: $0 start|stop|rgw-stop|rgw-start   (see the comment at the top for the environment)" >&2; exit 2 ;;
esac
