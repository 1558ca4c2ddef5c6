#!/usr/bin/python3
"""Two rate-limited libtorrent leechers for btda's real-client swarm test.

One leecher downloads the whole torrent; the other wants only the first half of the
pieces (the rest at priority 0), so it stops at about half and stays in the swarm.
Each is bound to its own 127.x address with DHT, LSD, UPnP and NAT-PMP off, announces
to the torrent's tracker, and its own progress (libtorrent's count of verified pieces)
is printed as one JSON line per 0.3 s. Stops on SIGTERM/SIGINT, on stdin closing, or
after --max-seconds.

Usage: lt_leechers.py --torrent T --dir DIR --full IP:PORT --half IP:PORT [--rate B/S]
"""
import argparse
import json
import os
import signal
import sys
import threading
import time

import libtorrent as lt

from lt_common import settings


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--torrent", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--full", required=True)
    ap.add_argument("--half", required=True)
    ap.add_argument("--rate", type=int, default=64 * 1024)
    ap.add_argument("--max-seconds", type=int, default=600)
    a = ap.parse_args()

    handles = {}
    sessions = []
    for name, addr in (("full", a.full), ("half", a.half)):
        ses = lt.session(settings(addr))
        sessions.append(ses)
        p = lt.add_torrent_params()
        p.ti = lt.torrent_info(a.torrent)
        p.save_path = os.path.join(a.dir, "lt-" + name)
        os.makedirs(p.save_path, exist_ok=True)
        h = ses.add_torrent(p)
        h.set_download_limit(a.rate)
        if name == "half":
            n = p.ti.num_pieces()
            h.prioritize_pieces([4] * (n // 2) + [0] * (n - n // 2))
        handles[name] = h

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()

    start = time.time()
    while not stop.is_set() and time.time() - start < a.max_seconds:
        line = {"t": time.time()}
        for name, h in handles.items():
            s = h.status()
            line[name] = s.num_pieces
            line[name + "_peers"] = s.num_peers
        print(json.dumps(line), flush=True)
        stop.wait(0.3)


if __name__ == "__main__":
    main()
