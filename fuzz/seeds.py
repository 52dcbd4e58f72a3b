#!/usr/bin/env python3
"""Writes the seed corpus of the `requests` fuzz target: a few valid (and nearly valid)
weft.v1 requests, protobuf-encoded by hand, each prefixed with the byte that picks the
request kind (see fuzz_targets/requests.rs). Usage: seeds.py DIR."""
import os
import sys


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, value):
    """A field: bytes/str/messages are length-delimited, ints are varints, bools too."""
    if isinstance(value, bool):
        return varint(num << 3) + varint(int(value))
    if isinstance(value, int):
        return varint(num << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(num << 3 | 2) + varint(len(value)) + value


def msg(*fields):
    return b"".join(fields)


def labels(num, pairs):
    return b"".join(field(num, msg(field(1, k), field(2, v))) for k, v in pairs)


def route(dest, gw="", metric=0):
    return msg(field(1, dest), field(2, gw) if gw else b"", field(3, metric) if metric else b"")


def link(name, ns, addrs, peer=None, master="", routes=(), mtu=0, mac="", lab=()):
    body = msg(field(1, name), field(2, ns), labels(3, lab),
               field(4, mtu) if mtu else b"", field(5, mac) if mac else b"",
               field(6, True), field(7, master) if master else b"",
               *[field(8, a) for a in addrs], *[field(9, r) for r in routes])
    if peer is None:
        return body + field(11, b"")
    return body + field(10, msg(field(1, peer)))


def peer(name, ns, addrs):
    return msg(field(1, name), field(2, ns), field(5, True), *[field(7, a) for a in addrs])


def network(name, subnets, internal=False, lab=(), v6=False, bridge=""):
    subs = [field(4, msg(field(1, s), field(2, gw), field(3, rng), *[field(4, r) for r in res]))
            for s, gw, rng, res in subnets]
    return msg(field(1, name), labels(2, lab), field(3, bridge) if bridge else b"", *subs,
               field(5, internal) if internal else b"", field(8, 1500),
               field(15, v6) if v6 else b"")


def port(host, container, ip="", end=0, proto="tcp"):
    return msg(field(1, ip) if ip else b"", field(2, host), field(3, end) if end else b"",
               field(4, container), field(5, proto))


def connect(net, ns, ipv4="", ipv6="", mac="", aliases=(), ports=()):
    return msg(field(1, net), field(2, ns), field(3, "eth0"),
               field(4, ipv4) if ipv4 else b"", field(5, ipv6) if ipv6 else b"",
               field(6, mac) if mac else b"", *[field(7, a) for a in aliases],
               *[field(8, p) for p in ports], field(11, "req-1"))


def two(kind, first, second):
    return bytes([kind]) + len(first).to_bytes(2, "little") + first + second


SEED_LINK = link("veth1", "ns1", ["192.168.1.10/24"], peer("veth2", "ns2", ["192.168.1.20/24"]),
                 routes=[route("default", "192.168.1.1"), route("10.9.0.0/16", "", 5)],
                 lab=[("app", "web"), ("tier", "front")])
NET = network("web", [("172.20.0.0/16", "172.20.0.1", "172.20.5.0/24", ["172.20.5.9"]),
                      ("fd00:20::/64", "", "", [])], lab=[("a", "b")])
CONNECT = connect("web", "ns1", ipv4="172.20.0.7", mac="02:42:ac:14:00:07",
                  aliases=["web", "web.local"],
                  ports=[port(8080, 80), port(5353, 53, ip="10.0.0.1", proto="udp"),
                         port(9000, 9000, end=9010)])
SEEDS = {
    "namespace": bytes([0]) + msg(field(1, msg(field(1, "ns1"), labels(2, [("k", "v")]))),
                                  field(3, "rid")),
    "namespace_adopt": bytes([0]) + msg(field(1, msg(field(1, "ad"),
                                                     field(3, "/proc/1/ns/net")))),
    "link_veth": bytes([1]) + msg(field(1, SEED_LINK), field(3, "rid")),
    "link_bridge": bytes([1]) + msg(field(1, link("br0", "", [], mtu=9000,
                                                   mac="02:00:00:00:00:01"))),
    "link_port": bytes([1]) + msg(field(1, link("ha", "", [], peer("eth0", "a", ["10.0.0.2/24"]),
                                                 master="br0"))),
    "network": bytes([2]) + msg(field(1, NET)),
    "network_v6": bytes([2]) + msg(field(1, network("six", [], v6=True, internal=True))),
    "connect": bytes([3]) + CONNECT,
    "update": two(4, msg(field(1, SEED_LINK)),
                  msg(field(1, link("veth1", "ns1", ["192.168.1.11/24"], mtu=1400)),
                      field(2, msg(field(1, "mtu"), field(1, "addresses"), field(1, "veth.peer.up"))))),
    "connect_to": two(5, msg(field(1, NET)), CONNECT),
}

if __name__ == "__main__":
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
