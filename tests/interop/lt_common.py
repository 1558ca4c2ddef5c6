"""What btda's libtorrent helper scripts share: a session bound to one loopback address."""


def settings(ip_port):
    """Session settings for a client on `ip_port` (listening and connecting from its own
    127.x address), with DHT, LSD, UPnP and NAT-PMP off."""
    ip = ip_port.rsplit(":", 1)[0]
    return {
        "listen_interfaces": ip_port,
        "outgoing_interfaces": ip,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "dht_bootstrap_nodes": "",
        # libtorrent's default: one connection per IP, as real swarms run it. btda must
        # never hold two connections with a client at once.
        "allow_multiple_connections_per_ip": False,
        "alert_mask": 0,
        # Loopback peers are "local": make download limits apply to them too.
        "ignore_limits_on_local_network": False,
    }
