"""Debian's Chromium as the browser tests and bench/web.py launch it through Playwright."""

from __future__ import annotations

import os
from pathlib import Path

CHROMIUM = Path(os.environ.get("JARVIS_CHROMIUM", "/usr/bin/chromium"))
# ../shared/ENVIRONMENT.md: without the background-networking flags Chromium keeps dialling
# out of a closed network.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
