#!/usr/bin/python3
"""A libtorrent client that joins a swarm served by `btda sim` (interop test).

Adds the .torrent (so it announces to the simulated trackers), bound to its own
127.x address with DHT, LSD, UPnP and NAT-PMP off, and prints one JSON line per half
second with what it sees: peers the trackers listed, peers connected, seeds among them.
Exits after --max-seconds or once --min-peers are connected.

Usage: lt_join.py --torrent FILE --at IP:PORT --dir DIR
"""
import argparse
import json
import time

import libtorrent as lt

from lt_common import settings


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--torrent", required=True)
    ap.add_argument("--at", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--min-peers", type=int, default=5)
    ap.add_argument("--max-seconds", type=int, default=60)
    a = ap.parse_args()

    # The simulated peers speak TCP only: without this libtorrent first tries uTP to
    # each and waits for every attempt to time out.
    session = lt.session(settings(a.at) | {"enable_outgoing_utp": False,
                                           "enable_incoming_utp": False})
    p = lt.add_torrent_params()
    p.ti = lt.torrent_info(a.torrent)
    p.save_path = a.dir
    h = session.add_torrent(p)
    start = time.time()
    while time.time() - start < a.max_seconds:
        st = h.status()
        line = {"listed": st.list_peers, "connected": st.num_peers, "seeds": st.num_seeds,
                "tracker_ok": st.current_tracker != ""}
        print(json.dumps(line), flush=True)
        if st.num_peers >= a.min_peers:
            break
        time.sleep(0.5)


if __name__ == "__main__":
    main()
