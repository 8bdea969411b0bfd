"""Relay: a failover stream-relay daemon for live-commerce studios."""

__version__ = "0.1.0"
