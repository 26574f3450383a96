#!/usr/bin/env bash
# Start the local offline IPFS node (js-ipfs from `npm ci --prefix tools/ipfs`) and print its PID.
#
#   IPFS_PATH=var/ipfs tools/ipfs/start.sh [PORT]      # RPC API on 127.0.0.1:PORT (default 5001)
#
# Everything else (repo init, addresses, waiting for the API, stale locks) is in start.py:
# `python -m tools.ipfs.start --help`. Stop the node with `kill <PID>`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
: "${IPFS_PATH:?set IPFS_PATH to the repo directory of the node}"
port="${1:-5001}"
python="$root/.venv/bin/python"
[ -x "$python" ] || python=python3  # start.py needs only the standard library
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" exec "$python" -m tools.ipfs.start \
  --repo "$IPFS_PATH" --port "$port"
