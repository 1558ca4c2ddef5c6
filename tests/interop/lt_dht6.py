#!/usr/bin/python3
"""libtorrent DHT nodes on IPv6 loopback for btda's BEP 32 interop test.

Starts N sessions listening on [::1] at --port, --port+1, …, DHT on and bootstrapped only
to each other (and to --extra nodes, e.g. btda's); LSD, UPnP and NAT-PMP off; the
loopback restrictions of libtorrent's DHT off. Prints one JSON line with the node
addresses when ready, then runs until stdin closes or --max-seconds pass.
"""
import argparse
import json
import sys
import threading

import libtorrent as lt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--port", type=int, default=51810)
    ap.add_argument("--extra", default="", help="more bootstrap nodes, [ip]:port,…")
    ap.add_argument("--max-seconds", type=int, default=90)
    a = ap.parse_args()
    nodes = [f"[::1]:{a.port + i}" for i in range(a.nodes)]
    bootstrap = ",".join(nodes + ([a.extra] if a.extra else []))
    sessions = [lt.session({
        "listen_interfaces": node,
        "enable_dht": True,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "dht_bootstrap_nodes": bootstrap,
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_ignore_dark_internet": False,
        "dht_enforce_node_id": False,
    }) for node in nodes]
    print(json.dumps({"nodes": nodes}), flush=True)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait(a.max_seconds)
    del sessions


if __name__ == "__main__":
    main()
