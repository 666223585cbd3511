"""Broker facade and backends."""

from wsroute.broker.base import BrokerBackend, Deliver
from wsroute.broker.broker import Broker, Subscriber, backend_from_url
from wsroute.broker.memory import MemoryBackend

__all__ = ["Broker", "BrokerBackend", "Deliver", "MemoryBackend", "Subscriber", "backend_from_url"]
