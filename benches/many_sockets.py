#!/usr/bin/env python3
"""Fills the current network namespace with TCP sockets for the state-read
benchmark: SOCKETS open connections' worth of sockets on loopback (both ends
count) plus a few thousand in TIME_WAIT, and a handful on the port being
looked for. Prints "ready" once they exist and holds them until stdin closes.
Run it in a namespace of its own (the benchmark uses `unshare -n`)."""
import os
import resource
import socket
import sys

TOTAL = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
WANTED_PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 8080
TIME_WAIT = 5_000


os.system("ip link set lo up")
# Without CAP_SYS_RESOURCE a process may not raise its descriptor limit, so
# the crowd is spread over worker processes that each stay under it.
_, HARD = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (HARD, HARD))
PAIRS_PER_WORKER = max(1, (HARD - 100) // 2)

held = []


def connect_many(port, count):
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(4096)
    held.append(server)
    for _ in range(count):
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        held.extend((client, accepted))


# The sockets being looked for: a listener and three connections.
connect_many(WANTED_PORT, 3)
# TIME_WAIT: the accepting side closes first.
server = socket.socket()
server.bind(("127.0.0.1", 19999))
server.listen(4096)
for _ in range(TIME_WAIT):
    client = socket.create_connection(("127.0.0.1", 19999))
    accepted, _ = server.accept()
    accepted.close()
    client.close()
server.close()
# The crowd: open connections, two sockets each, in worker processes that
# hold them until this process's stdin closes.
pairs = (TOTAL - TIME_WAIT) // 2
port = 20000
workers = []
while pairs > 0:
    count = min(pairs, PAIRS_PER_WORKER)
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_read)
        held.clear()
        connect_many(port, count)
        os.write(ready_write, b"x")
        os.close(ready_write)
        signal_hold = sys.stdin.read()  # EOF when the parent's stdin closes
        os._exit(0)
    os.close(ready_write)
    os.read(ready_read, 1)
    os.close(ready_read)
    workers.append(pid)
    pairs -= count
    port += 1

total = len(held) + TIME_WAIT + 2 * ((TOTAL - TIME_WAIT) // 2)
print("ready", total, flush=True)
sys.stdin.read()
for pid in workers:
    os.waitpid(pid, 0)
