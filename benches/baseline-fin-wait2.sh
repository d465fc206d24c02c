#!/usr/bin/env bash
# The baseline tcplab is measured against: the article's fin-wait2 matrix done
# by hand, as a user without tcplab would script it (ip netns, iptables, a
# python3 server and client, ss). Four cases, one after the other, each in
# fresh namespaces. Exits non-zero if a case does not give the article's
# answer. Run as root; it removes its namespaces when it exits.
set -euo pipefail
id=$$
c1="bl-c1-$id"
c2="bl-c2-$id"
cleanup() {
    ip netns pids "$c2" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$c1" 2>/dev/null || true
    ip netns del "$c2" 2>/dev/null || true
}
trap cleanup EXIT

wait_for() { # namespace, grep pattern: poll ss until the pattern shows
    for _ in $(seq 200); do
        ip netns exec "$1" ss -tan | grep -q "$2" && return 0
        sleep 0.01
    done
    echo "timed out waiting for $2 in $1" >&2
    return 1
}

for old in 0 1; do
    for new in 0 1; do
        ip netns add "$c1"
        ip netns add "$c2"
        ip -n "$c1" link add eth0 type veth peer name eth0 netns "$c2"
        ip -n "$c1" addr add 10.211.55.5/24 dev eth0
        ip -n "$c2" addr add 10.211.55.10/24 dev eth0
        for ns in "$c1" "$c2"; do
            ip -n "$ns" link set lo up
            ip -n "$ns" link set eth0 up
        done
        ip netns exec "$c1" iptables --append OUTPUT --match tcp --protocol tcp \
            --dport 8080 --tcp-flags FIN FIN --jump DROP

        ip netns exec "$c2" python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, int(sys.argv[1]))
s.bind(("0.0.0.0", 8080))
s.listen()
while True:
    c, _ = s.accept()
    c.sendall(b"Hello\n")
    c.close()
' "$old" &
        server=$!
        wait_for "$c2" "LISTEN .*:8080"

        ip netns exec "$c1" python3 -c '
import socket, time
c = socket.create_connection(("10.211.55.10", 8080))
while c.recv(100):
    pass
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
time.sleep(0.02)
c.close()
'
        wait_for "$c2" "FIN-WAIT-2"
        kill -9 "$server"
        wait "$server" 2>/dev/null || true

        result=$(ip netns exec "$c2" python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, int(sys.argv[1]))
try:
    s.bind(("0.0.0.0", 8080))
    s.listen()
    print("ok")
except OSError as e:
    print("EADDRINUSE" if e.errno == 98 else e)
' "$new")
        expected=EADDRINUSE
        [ "$old$new" = 11 ] && expected=ok
        echo "old=$old new=$new: $result (expected $expected)"
        [ "$result" = "$expected" ] || exit 1
        ip netns del "$c1"
        ip netns del "$c2"
    done
done
