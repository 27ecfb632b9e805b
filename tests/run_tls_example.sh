#!/usr/bin/env bash
# Runs the TLS example against a fresh local node behind stunnel, with a certificate for
# "localhost" issued by a CA made here:
#   run_tls_example.sh NODE_BINARY EXAMPLE_BINARY [EXPECTED_TEXT]
set -euo pipefail
node_bin=$1
example=$2
expected=${3:-}

dir=$(mktemp -d "${TMPDIR:-/tmp}/dqlite-example.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$dir"
}
trap cleanup EXIT
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

node_port=$(free_port)
"$node_bin" --id 1 --address "127.0.0.1:$node_port" --dir "$dir" >"$dir/node.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q '^ready' "$dir/node.log" 2>/dev/null && break; sleep 0.1; done
grep -q '^ready' "$dir/node.log" || { echo "node did not start"; cat "$dir/node.log"; exit 1; }

ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $ec -keyout "$dir/ca.key" -out "$dir/ca.pem" -days 2 -subj /CN=example-ca 2>/dev/null
openssl req $ec -keyout "$dir/server.key" -out "$dir/server.csr" -subj /CN=localhost 2>/dev/null
echo "subjectAltName=DNS:localhost" >"$dir/ext.cnf"
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
  -out "$dir/server.pem" -days 2 -extfile "$dir/ext.cnf" 2>/dev/null

tls_port=$(free_port)
cat >"$dir/stunnel.conf" <<CONF
foreground = yes
pid = $dir/stunnel.pid
output = $dir/stunnel.log
[dqlite]
accept = 127.0.0.1:$tls_port
connect = 127.0.0.1:$node_port
cert = $dir/server.pem
key = $dir/server.key
CONF
stunnel4 "$dir/stunnel.conf" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $tls_port), 1)" 2>/dev/null && break
  sleep 0.1
done

output=$("$example" "localhost:$tls_port" "$dir/ca.pem")
echo "$output"
if [[ -n $expected && $output != *"$expected"* ]]; then
  echo "expected output to contain: $expected" >&2
  exit 1
fi
