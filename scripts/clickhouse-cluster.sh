#!/usr/bin/env bash
# A local two-shard ClickHouse cluster named "ragpulse" (2 shards x 1 replica,
# no ZooKeeper) for the ClickHouse backend's tests and for trying it out.
# Each node is a clickhouse-server process with its own config, data and logs
# under one directory; both listen on 127.0.0.1 only, on ports away from a
# system ClickHouse's (8123/9000/9009).
#
# Usage: scripts/clickhouse-cluster.sh start|stop|status|restart|urls [DIR]
#   DIR (or RAGPULSE_CLICKHOUSE_DIR): where the nodes live
#       [default: ${TMPDIR:-/tmp}/ragpulse-clickhouse]
#   RAGPULSE_CLICKHOUSE_BIN: the server binary [default: clickhouse-server on
#       the PATH, else /usr/sbin/clickhouse-server (Debian's package)]
#   RAGPULSE_CLICKHOUSE_READY_TIMEOUT: seconds to wait for a node [default: 60]
# `urls` prints the nodes' HTTP URLs, comma-separated, as the tests read them
# from RAGPULSE_CLICKHOUSE_URLS. `status` exits 3 when a node is down.
set -euo pipefail

DIR=${2:-${RAGPULSE_CLICKHOUSE_DIR:-${TMPDIR:-/tmp}/ragpulse-clickhouse}}
BIN=${RAGPULSE_CLICKHOUSE_BIN:-$(command -v clickhouse-server || echo /usr/sbin/clickhouse-server)}
READY_TIMEOUT=${RAGPULSE_CLICKHOUSE_READY_TIMEOUT:-60}
HTTP=(18123 28123); TCP=(19000 29000); INTER=(19009 29009)

# The node's config.xml and users.xml (18.16's <yandex> root, which current
# versions still read). Both nodes list the same two shards.
write_config() { # $1 = node 1|2
  local n=$1 d="$DIR/node$1" i=$(( $1 - 1 ))
  mkdir -p "$d/data" "$d/tmp" "$d/log" "$d/user_files" "$d/format_schemas"
  cat > "$d/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <logger><level>information</level><log>$d/log/server.log</log>
    <errorlog>$d/log/server.err.log</errorlog><size>100M</size><count>2</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>${HTTP[$i]}</http_port><tcp_port>${TCP[$i]}</tcp_port>
  <interserver_http_port>${INTER[$i]}</interserver_http_port>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <path>$d/data/</path><tmp_path>$d/tmp/</tmp_path>
  <user_files_path>$d/user_files/</user_files_path>
  <format_schema_path>$d/format_schemas/</format_schema_path>
  <users_config>$d/users.xml</users_config>
  <default_profile>default</default_profile><default_database>default</default_database>
  <timezone>UTC</timezone><mark_cache_size>268435456</mark_cache_size>
  <remote_servers><ragpulse>
    <shard><replica><host>127.0.0.1</host><port>${TCP[0]}</port></replica></shard>
    <shard><replica><host>127.0.0.1</host><port>${TCP[1]}</port></replica></shard>
  </ragpulse></remote_servers>
  <macros><shard>0$n</shard><replica>r1</replica></macros>
</yandex>
EOF
  cat > "$d/users.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users>
    <default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile><quota>default</quota></default>
    <ragpulse><password>ragpulse_pw</password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile><quota>default</quota></ragpulse>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
  </interval></default></quotas>
</yandex>
EOF
}

# A live, non-zombie server started with this node's config (a pid alone can
# be reused, and a node shutting down still passes `kill -0`).
alive() {
  local p; p=$(cat "$DIR/node$1/pid" 2>/dev/null) || return 1
  [ -r "/proc/$p/cmdline" ] && tr '\0' ' ' < "/proc/$p/cmdline" | grep -q "$DIR/node$1/config.xml" \
    && ! grep -q '^[^)]*) Z' "/proc/$p/stat" 2>/dev/null
}
ping() { [ "$(curl -s --max-time 1 "http://127.0.0.1:${HTTP[$(( $1 - 1 ))]}/ping" 2>/dev/null)" = "Ok." ]; }

start() {
  [ -x "$BIN" ] || { echo "no clickhouse-server at $BIN (apt-get install clickhouse-server)" >&2; exit 1; }
  local started=() n
  for n in 1 2; do
    if alive $n; then # running, or still shutting down: wait until it answers or exits
      for _ in $(seq 1 $(( READY_TIMEOUT * 5 ))); do ping $n || ! alive $n && break; sleep 0.2; done
      if alive $n; then echo "node$n already running (pid $(cat "$DIR/node$n/pid"))"; continue; fi
    fi
    local i=$(( n - 1 )) p
    # A busy port would let /ping answer from another server: refuse to start.
    for p in ${HTTP[$i]} ${TCP[$i]} ${INTER[$i]}; do
      if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "port $p busy (node$n)" >&2; exit 1; fi
    done
    write_config $n; date +%s%N > "$DIR/node$n/started_ns"
    setsid "$BIN" --config-file="$DIR/node$n/config.xml" \
      > "$DIR/node$n/log/stdout.log" 2>&1 < /dev/null &
    echo $! > "$DIR/node$n/pid"; started+=("$n")
  done
  for n in ${started[@]+"${started[@]}"}; do
    local deadline=$(( $(date +%s) + READY_TIMEOUT ))
    until ping $n; do
      alive $n || { echo "node$n died, see $DIR/node$n/log" >&2; exit 1; }
      [ "$(date +%s)" -lt "$deadline" ] || { echo "node$n not ready in ${READY_TIMEOUT}s" >&2; exit 1; }
      sleep 0.05
    done
    sleep 0.2; alive $n || { echo "node$n exited after start, see $DIR/node$n/log" >&2; exit 1; }
    echo "node$n ready: http ${HTTP[$(( n - 1 ))]} tcp ${TCP[$(( n - 1 ))]} pid $(cat "$DIR/node$n/pid")" \
         "after $(( ($(date +%s%N) - $(cat "$DIR/node$n/started_ns")) / 1000000 )) ms"
  done
}

# SIGTERM to both nodes at once, then wait for each; SIGKILL after 30 s. A
# node that served Distributed queries takes a few seconds to exit (it waits
# for its pooled interserver connections).
stop() {
  local n pids=()
  for n in 1 2; do
    if alive $n; then kill -TERM "$(cat "$DIR/node$n/pid")"; pids[n]=1; fi
  done
  for n in 1 2; do
    if [ -z "${pids[n]:-}" ]; then rm -f "$DIR/node$n/pid"; echo "node$n not running"; continue; fi
    for _ in $(seq 1 150); do alive $n || break; sleep 0.2; done
    if alive $n; then kill -KILL "$(cat "$DIR/node$n/pid")"; echo "node$n killed (SIGKILL)"
    else echo "node$n stopped"; fi
    rm -f "$DIR/node$n/pid"
  done
}

status() {
  local rc=0 n
  for n in 1 2; do
    if alive $n && ping $n; then echo "node$n up (pid $(cat "$DIR/node$n/pid"), http ${HTTP[$(( n - 1 ))]})"
    else echo "node$n down"; rc=3; fi
  done
  return $rc
}

urls() { echo "http://127.0.0.1:${HTTP[0]},http://127.0.0.1:${HTTP[1]}"; }

case "${1:-}" in
  start) start ;; stop) stop ;; status) status ;; restart) stop; start ;; urls) urls ;;
  *) echo "usage: $0 start|stop|status|restart|urls [DIR]" >&2; exit 2 ;;
esac
