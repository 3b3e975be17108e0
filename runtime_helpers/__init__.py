"""Runtime helpers scripts call (cronium.py, cronium.js, cronium.sh) and their host side."""
