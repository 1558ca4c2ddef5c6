#!/usr/bin/python3
"""A two-peer libtorrent swarm on loopback for btda's interop test.

Creates random content and a v1 torrent, starts a seeder and a rate-limited leecher
(Debian's python3-libtorrent), each bound to its own 127.x address with DHT, LSD, UPnP
and NAT-PMP off, and prints one JSON line per half second with each client's own
progress. Stops on SIGTERM/SIGINT, on stdin closing, or after --max-seconds.

With --encryption forced both clients speak only MSE/PE with RC4 (libtorrent's
out_enc_policy and in_enc_policy forced, allowed_enc_level RC4): they close plaintext
handshakes. With --connect IP:PORT the leecher dials that peer (btda) every 5 s.

Usage: lt_swarm.py --dir DIR --seeder IP:PORT --leecher IP:PORT [--rate BYTES/S]
The torrent is written to DIR/input/swarm.torrent before the line {"ready": ...}.
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--seeder", required=True)
    ap.add_argument("--leecher", required=True)
    ap.add_argument("--size", type=int, default=64 * PIECE)
    ap.add_argument("--rate", type=int, default=32 * 1024)
    ap.add_argument("--max-seconds", type=int, default=300)
    ap.add_argument("--tracker", help="announce URL put into the torrent (the clients announce to it)")
    ap.add_argument("--seeder-only", action="store_true", help="no leecher")
    ap.add_argument("--hash-only", action="store_true", help="write the torrent, print it, exit")
    ap.add_argument("--encryption", choices=["enabled", "forced"], default="enabled")
    ap.add_argument("--connect", help="IP:PORT the leecher dials every 5 s")
    a = ap.parse_args()

    seed_dir = os.path.join(a.dir, "seed")
    leech_dir = os.path.join(a.dir, "leech")
    input_dir = os.path.join(a.dir, "input")
    for d in (seed_dir, leech_dir, input_dir):
        os.makedirs(d, exist_ok=True)
    content = os.path.join(seed_dir, "content.bin")
    with open(content, "wb") as f:
        f.write(random.Random(7).randbytes(a.size))

    fs = lt.file_storage()
    lt.add_files(fs, content)
    ct = lt.create_torrent(fs, PIECE, flags=lt.create_torrent.v1_only)
    if a.tracker:
        ct.add_tracker(a.tracker)
    lt.set_piece_hashes(ct, seed_dir)
    data = lt.bencode(ct.generate())
    path = os.path.join(input_dir, "swarm.torrent")
    with open(path, "wb") as f:
        f.write(data)
    ti = lt.torrent_info(path)
    if a.hash_only:
        print(json.dumps({"ready": str(ti.info_hash()), "pieces": ti.num_pieces(), "torrent": path}), flush=True)
        return

    seeder = lt.session(settings(a.seeder, a.encryption))
    leecher = lt.session(settings(a.leecher, a.encryption))
    sp = lt.add_torrent_params()
    sp.ti = ti
    sp.save_path = seed_dir
    sp.flags |= lt.torrent_flags.seed_mode
    sh = seeder.add_torrent(sp)
    if a.seeder_only:
        lh = sh
    else:
        lp = lt.add_torrent_params()
        lp.ti = lt.torrent_info(path)
        lp.save_path = leech_dir
        lh = leecher.add_torrent(lp)
        lh.set_download_limit(a.rate)
        host, port = a.seeder.rsplit(":", 1)
        lh.connect_peer((host, int(port)))

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()

    print(json.dumps({"ready": str(ti.info_hash()), "pieces": ti.num_pieces(), "torrent": path}), flush=True)
    start = time.time()
    last_dial = 0.0
    while not stop.is_set() and time.time() - start < a.max_seconds:
        if a.connect and not a.seeder_only and time.time() - last_dial > 5:
            host, port = a.connect.rsplit(":", 1)
            lh.connect_peer((host, int(port)))
            last_dial = time.time()
        s, l = sh.status(), lh.status()
        print(json.dumps({"t": time.time(), "seeder": s.num_pieces, "leecher": l.num_pieces,
                          "leecher_peers": l.num_peers}), flush=True)
        stop.wait(0.5)


if __name__ == "__main__":
    main()
