"""Pushes signed records (one wire JSON per line) to a node as a 0.1.2 peer would, at a steady rate.

    python3 benches/mirror_push.py HOST PORT RATE FILE

Reads and discards what the node sends, so the connection never stalls.
"""

import socket
import sys
import threading
import time


def main():
    host, port, rate, path = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    sock = socket.create_connection((host, port))
    threading.Thread(target=lambda: [None for _ in iter(lambda: sock.recv(65536), b"")], daemon=True).start()
    start = time.monotonic()
    with open(path, "rb") as f:
        for i, line in enumerate(f):
            body = b'{"type":"experiment","payload":' + line.rstrip(b"\n") + b"}"
            sock.sendall(len(body).to_bytes(4, "big") + body)
            delay = start + (i + 1) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    time.sleep(2)
    sock.close()


if __name__ == "__main__":
    main()
