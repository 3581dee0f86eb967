#!/usr/bin/env bash
# Installs the pinned interop peers, once per lock-file content:
#   interop/python/.venv        a venv from interop/python/requirements.txt (PyPI)
#   interop/node/node_modules   `npm ci` from interop/node/package-lock.json (the npm registry)
# Python 3 with venv and Node >= 20 with npm are installed from Debian's packages when missing.
set -euo pipefail
cd "$(dirname "$0")"

log() { echo "[interop] $*"; }
apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "installing Debian packages: $*"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "$@" >/dev/null
}
hash_of() { sha256sum "$1" | cut -d' ' -f1; }

# Python peer.
command -v python3 >/dev/null || apt_install python3 python3-venv
want=$(hash_of python/requirements.txt)
if [ ! -x python/.venv/bin/python ] || [ "$(cat python/.venv/.requirements.sha256 2>/dev/null)" != "$want" ]; then
  log "creating python/.venv from requirements.txt"
  rm -rf python/.venv
  python3 -m venv python/.venv 2>/dev/null || { apt_install python3-venv; python3 -m venv python/.venv; }
  python/.venv/bin/pip install --quiet --disable-pip-version-check --no-input -r python/requirements.txt
  echo "$want" > python/.venv/.requirements.sha256
fi

# Node peer.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt_install nodejs npm
fi
want=$(hash_of node/package-lock.json)
if [ ! -d node/node_modules ] || [ "$(cat node/node_modules/.lock.sha256 2>/dev/null)" != "$want" ]; then
  log "npm ci in node/"
  (cd node && npm ci --silent --no-audit --no-fund)
  echo "$want" > node/node_modules/.lock.sha256
fi
log "peers ready: $(python/.venv/bin/python --version), node $(node --version)"
