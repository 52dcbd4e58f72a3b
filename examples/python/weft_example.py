#!/usr/bin/env python3
"""A weft client in Python: a network, two namespaces connected to it, a watch, clean-up.

It talks to weftd on its Unix socket with grpcio's default channel, through stubs generated
from weft's .proto files (see README.md). Run it as a user weftd lets create objects:

    python3 weft_example.py --socket /run/weft/weftd.sock
"""

import argparse
import os
import pathlib
import sys
import tempfile
import threading
import time

import grpc
from grpc_tools import protoc

PROTO_DIR = pathlib.Path(__file__).resolve().parents[2] / "proto"


def load_stubs(out_dir):
    """Generates the Python stubs from proto/ into out_dir and imports them."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    protos = sorted(str(p) for p in (PROTO_DIR / "weft" / "v1").glob("*.proto"))
    # grpc_tools ships google/protobuf/*.proto; protoc.main does not add it by itself.
    well_known = pathlib.Path(protoc.__file__).parent / "_proto"
    args = ["protoc", f"-I{PROTO_DIR}", f"-I{well_known}",
            f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *protos]
    if protoc.main(args) != 0:
        sys.exit(f"protoc failed on {PROTO_DIR}")
    sys.path.insert(0, str(out_dir))
    global common_pb2, namespace_pb2, namespace_pb2_grpc, network_pb2, network_pb2_grpc
    from weft.v1 import common_pb2, namespace_pb2, namespace_pb2_grpc  # noqa: E402
    from weft.v1 import network_pb2, network_pb2_grpc  # noqa: E402


def collect(stream, events):
    """Records a watch stream's events until the stream is cancelled."""
    try:
        for event in stream:
            events.append(event)
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.CANCELLED:
            raise


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", default=os.environ.get("WEFT_SOCKET", "/run/weft/weftd.sock"))
    parser.add_argument("--prefix", default="py", help="prefix of every object's name")
    parser.add_argument("--stubs", default=None,
                        help="where to generate the stubs (default: a temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        load_stubs(args.stubs or tmp)
        run(args.socket, args.prefix)


def run(socket, prefix):
    label = {"example": prefix}
    selector = f"example={prefix}"
    net_name, ns_names = f"{prefix}-net", [f"{prefix}-a", f"{prefix}-b"]
    # The default channel, as every grpcio tutorial makes it: nothing weft-specific.
    with grpc.insecure_channel(f"unix:{socket}") as channel:
        networks = network_pb2_grpc.NetworkServiceStub(channel)
        namespaces = namespace_pb2_grpc.NamespaceServiceStub(channel)

        # A server-streaming call: the current networks of the selector, then every change.
        stream = networks.WatchNetworks(network_pb2.WatchNetworksRequest(label_selector=selector))
        events = []
        watcher = threading.Thread(target=collect, args=(stream, events))
        watcher.start()
        try:
            # Every call waits until weftd has made the kernel match (wait defaults to true).
            net = networks.CreateNetwork(network_pb2.CreateNetworkRequest(
                network=network_pb2.Network(name=net_name, labels=label)), timeout=30).network
            print(f"network {net.name}: bridge {net.bridge_name}, "
                  f"subnet {net.subnets[0].subnet}, gateway {net.subnets[0].gateway}")
            for name in ns_names:
                ns = namespaces.CreateNamespace(namespace_pb2.CreateNamespaceRequest(
                    namespace=namespace_pb2.Namespace(name=name, labels=label)),
                    timeout=30).namespace
                print(f"namespace {ns.name}")
                ep = networks.Connect(network_pb2.ConnectRequest(
                    network=net_name, namespace=name), timeout=30).endpoint
                print(f"  connected: {ep.interface_name} {ep.ipv4_address} "
                      f"via {ep.ipv4_gateway}")
            net = networks.GetNetwork(network_pb2.GetNetworkRequest(name=net_name),
                                      timeout=30).network
            print(f"network {net.name} has {len(net.endpoints)} endpoints")
            # The watch reports the same: wait (briefly) for the event with both endpoints.
            deadline = time.monotonic() + 10
            while not any(len(e.network.endpoints) == 2 for e in events):
                if time.monotonic() > deadline:
                    sys.exit("the watch never showed the network with both endpoints")
                time.sleep(0.05)
            print("watch: saw the network with both endpoints")
        finally:
            for name in ns_names:
                try:
                    networks.Disconnect(network_pb2.DisconnectRequest(
                        network=net_name, namespace=name), timeout=30)
                except grpc.RpcError as e:
                    if e.code() != grpc.StatusCode.NOT_FOUND:
                        print(f"disconnect {name}: {e.details()}", file=sys.stderr)
                try:
                    namespaces.DeleteNamespace(
                        namespace_pb2.DeleteNamespaceRequest(name=name), timeout=30)
                except grpc.RpcError as e:
                    if e.code() != grpc.StatusCode.NOT_FOUND:
                        print(f"delete {name}: {e.details()}", file=sys.stderr)
            try:
                networks.DeleteNetwork(network_pb2.DeleteNetworkRequest(name=net_name),
                                       timeout=30)
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.NOT_FOUND:
                    print(f"delete {net_name}: {e.details()}", file=sys.stderr)
            stream.cancel()
            watcher.join(10)

    kinds = [common_pb2.EventType.Name(e.type) for e in events]
    print(f"watch saw {len(events)} events: " + ", ".join(
        f"{k.removeprefix('EVENT_TYPE_')}({len(e.network.endpoints)} endpoints)"
        for k, e in zip(kinds, events)))


if __name__ == "__main__":
    main()
