"""moebius-repro: regenerate every table of the Moebius paper (HUST + VIVO, 2026) from raw data."""

__version__ = "0.1.0"
