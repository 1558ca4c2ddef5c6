"""What btda's libtorrent helper scripts share: a session bound to one loopback address."""


# libtorrent's settings_pack enc_policy and enc_level values.
PE_FORCED, PE_ENABLED = 0, 1
PE_RC4 = 2


def settings(ip_port, encryption="enabled"):
    """Session settings for a client on `ip_port` (listening and connecting from its own
    127.x address), with DHT, LSD, UPnP and NAT-PMP off. With encryption "forced" it
    speaks only MSE/PE with RC4 in both directions (libtorrent's default is "enabled":
    plaintext first, MSE accepted)."""
    ip = ip_port.rsplit(":", 1)[0]
    forced = {
        "out_enc_policy": PE_FORCED,
        "in_enc_policy": PE_FORCED,
        "allowed_enc_level": PE_RC4,
    } if encryption == "forced" else {}
    return forced | {
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
