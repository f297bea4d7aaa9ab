"""Broker-side Backtrader pieces: commission schemes (and, later, live brokers)."""
