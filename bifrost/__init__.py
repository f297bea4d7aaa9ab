"""Domain kernel of bifrost-gamma: pricing, state classification, guards' arithmetic,
structure selection and the config schema. Pure Python/numpy, no Backtrader here."""
