"""How parties talk: one wire format, counted channels, in-process and mutual-TLS links.

See docs/transport.md for the frame layout, TLS settings, timeouts and error messages.
"""

from ppreg.transport.channel import Channel, Link, TrafficStats, local_pair
from ppreg.transport.keys import PARTY_NAMES, make_keys
from ppreg.transport.tls import Identity, Listener, connect, parse_address
from ppreg.transport.wire import MAX_FRAME_BYTES, WIRE_VERSION, Message, decode, encode

__all__ = [
    "MAX_FRAME_BYTES",
    "PARTY_NAMES",
    "WIRE_VERSION",
    "Channel",
    "Identity",
    "Link",
    "Listener",
    "Message",
    "TrafficStats",
    "connect",
    "decode",
    "encode",
    "local_pair",
    "make_keys",
    "parse_address",
]
