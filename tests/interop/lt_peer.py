#!/usr/bin/python3
"""One libtorrent client for btda's uTP and NAT interop tests.

  lt_peer.py make  --dir DIR [--tracker URL] [--pieces N]
      writes random content and a v1 torrent to DIR, prints {"hash", "torrent", "pieces"}
  lt_peer.py seed  --torrent T --save DIR --listen IP:PORT [--utp-only]
  lt_peer.py leech --torrent T --save DIR --listen IP:PORT [--rate B/S]
                   [--connect IP:PORT[,IP:PORT…]] [--utp-only] [--no-tracker] [--keep-seeds]
                   [--encryption forced]

seed and leech run one session bound to IP:PORT (DHT, LSD, UPnP and NAT-PMP off), print
{"ready": hash} and then one JSON line per half second with the client's own progress
and peer count, and stop on SIGTERM/SIGINT, on stdin closing, or after --max-seconds.
With --utp-only the client neither makes nor accepts TCP connections (libtorrent's
enable_outgoing_tcp / enable_incoming_tcp off). libtorrent's outgoing connections try
uTP first (its default), which is what a NATed leecher's relay must see.
"""
import argparse
import json
import os
import random
import signal
import sys
import threading
import time

import libtorrent as lt

from lt_common import settings

PIECE = 16 * 1024


def make(a):
    os.makedirs(a.dir, exist_ok=True)
    content = os.path.join(a.dir, "content.bin")
    with open(content, "wb") as f:
        f.write(random.Random(11).randbytes(a.pieces * PIECE))
    fs = lt.file_storage()
    lt.add_files(fs, content)
    ct = lt.create_torrent(fs, PIECE, flags=lt.create_torrent.v1_only)
    if a.tracker:
        ct.add_tracker(a.tracker)
    lt.set_piece_hashes(ct, a.dir)
    path = os.path.join(a.dir, "nat.torrent")
    with open(path, "wb") as f:
        f.write(lt.bencode(ct.generate()))
    ti = lt.torrent_info(path)
    print(json.dumps({"hash": str(ti.info_hash()), "torrent": path, "pieces": ti.num_pieces()}),
          flush=True)


def run(a):
    pack = settings(a.listen, a.encryption)
    if a.utp_only:
        pack |= {"enable_outgoing_tcp": False, "enable_incoming_tcp": False}
    if a.keep_seeds:
        pack |= {"close_redundant_connections": False}
    ses = lt.session(pack)
    p = lt.add_torrent_params()
    p.ti = lt.torrent_info(a.torrent)
    p.save_path = a.save
    if a.mode == "seed":
        p.flags |= lt.torrent_flags.seed_mode
    h = ses.add_torrent(p)
    if a.no_tracker:
        h.replace_trackers([])
    if a.rate:
        h.set_download_limit(a.rate)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    print(json.dumps({"ready": str(p.ti.info_hash())}), flush=True)
    start, last_dial = time.time(), 0.0
    while not stop.is_set() and time.time() - start < a.max_seconds:
        if a.connect and time.time() - last_dial > 5:
            for peer in a.connect.split(","):
                host, port = peer.rsplit(":", 1)
                h.connect_peer((host, int(port)))
            last_dial = time.time()
        s = h.status()
        print(json.dumps({"t": time.time(), "pieces": s.num_pieces, "peers": s.num_peers}),
              flush=True)
        stop.wait(0.5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["make", "seed", "leech"])
    ap.add_argument("--dir")
    ap.add_argument("--tracker")
    ap.add_argument("--pieces", type=int, default=32)
    ap.add_argument("--torrent")
    ap.add_argument("--save")
    ap.add_argument("--listen")
    ap.add_argument("--rate", type=int, default=0)
    ap.add_argument("--connect")
    ap.add_argument("--utp-only", action="store_true")
    ap.add_argument("--encryption", choices=["enabled", "forced"], default="enabled",
                    help="forced: MSE/PE with RC4 only, both ways")
    ap.add_argument("--no-tracker", action="store_true", help="never announce")
    ap.add_argument("--keep-seeds", action="store_true",
                    help="keep connections to seeds once done (close_redundant_connections off)")
    ap.add_argument("--max-seconds", type=int, default=300)
    a = ap.parse_args()
    if a.mode == "make":
        make(a)
    else:
        os.makedirs(a.save, exist_ok=True)
        run(a)


if __name__ == "__main__":
    main()
