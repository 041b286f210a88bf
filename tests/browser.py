"""Debian's chromium as the tests and benchmarks start it (no browser downloads)."""

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# Headless as root on a machine without a network: no sandbox, no GPU, and no
# background services that would try to reach the internet at every start.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
