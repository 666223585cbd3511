"""The ``rocket-multiplex`` sub-protocol: the sans-I/O codec and the multiplexed connection."""

from wsroute.multiplex.codec import SUBPROTOCOL, negotiate_subprotocol
from wsroute.multiplex.connection import MultiplexConnection

__all__ = ["SUBPROTOCOL", "MultiplexConnection", "negotiate_subprotocol"]
