"""Stores: connections to brokers and their data (Backtrader's store concept)."""
