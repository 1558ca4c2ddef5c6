#!/usr/bin/python3
"""libtorrent DHT nodes on loopback for btda's DHT interop test.

Starts N sessions on 127.35.0.1..N (port 51700), DHT on and bootstrapped only to each
other (and to --extra nodes, e.g. btda's); LSD, UPnP and NAT-PMP off; the loopback
restrictions of libtorrent's DHT off. Session 2 seeds the torrent in --torrent (and
announces it to the DHT); session N looks the torrent up every 2 s and prints the peers it
finds as JSON lines. Stops when stdin closes or after --max-seconds.
"""
import argparse
import json
import os
import sys
import threading
import time

import libtorrent as lt

PORT = 51700


def session(i, bootstrap):
    return lt.session({
        "listen_interfaces": f"127.35.0.{i}:{PORT}",
        "outgoing_interfaces": f"127.35.0.{i}",
        "enable_dht": True,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "dht_bootstrap_nodes": bootstrap,
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_ignore_dark_internet": False,
        "dht_enforce_node_id": False,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": lt.alert.category_t.dht_notification | lt.alert.category_t.dht_operation_notification
        | lt.alert.category_t.status_notification,
    })


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--torrent", required=True)
    ap.add_argument("--seed-dir", required=True)
    ap.add_argument("--extra", default="", help="more bootstrap nodes, ip:port,ip:port")
    ap.add_argument("--max-seconds", type=int, default=120)
    a = ap.parse_args()

    nodes = [f"127.35.0.{i}:{PORT}" for i in range(1, a.nodes + 1)]
    bootstrap = ",".join(nodes + ([a.extra] if a.extra else []))
    sessions = [session(i, bootstrap) for i in range(1, a.nodes + 1)]
    ti = lt.torrent_info(a.torrent)
    p = lt.add_torrent_params()
    p.ti = ti
    p.save_path = a.seed_dir
    p.flags |= lt.torrent_flags.seed_mode
    seed = sessions[1].add_torrent(p)
    searcher = sessions[-1]

    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    print(json.dumps({"ready": str(ti.info_hash()), "nodes": nodes}), flush=True)
    found = set()
    start = time.time()
    last_search = 0
    while not stop.is_set() and time.time() - start < a.max_seconds:
        if time.time() - last_search > 2:
            searcher.dht_get_peers(ti.info_hash())
            seed.force_dht_announce()
            last_search = time.time()
        for alert in searcher.pop_alerts():
            if isinstance(alert, lt.dht_get_peers_reply_alert):
                for ip, port in alert.peers():
                    found.add(f"{ip}:{port}")
        for s in sessions[:-1]:
            s.pop_alerts()
        print(json.dumps({"t": time.time(), "dht_nodes": [s.status().dht_nodes for s in sessions],
                          "found": sorted(found)}), flush=True)
        stop.wait(0.5)


if __name__ == "__main__":
    main()
