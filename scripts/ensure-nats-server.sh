#!/usr/bin/env bash
# Makes sure a nats-server binary is available: `npm start` runs its own local broker, and
# the tests start private ones. Prints the version when it is there; installs Debian's
# package (2.9.10, the version the project is tested on) when we may; otherwise says how.
set -euo pipefail

find_nats_server() {
  # Debian installs it in /usr/sbin, which is often not on a non-root user's PATH.
  command -v nats-server 2>/dev/null && return 0
  [[ -x /usr/sbin/nats-server ]] && { echo /usr/sbin/nats-server; return 0; }
  return 1
}

if [[ -n "${NATS_SERVER_BIN:-}" ]]; then
  # An explicit choice is never second-guessed by installing something else.
  if [[ ! -x "$NATS_SERVER_BIN" ]]; then
    echo "NATS_SERVER_BIN=$NATS_SERVER_BIN is not an executable file" >&2
    exit 1
  fi
  echo "nats-server: $NATS_SERVER_BIN ($("$NATS_SERVER_BIN" --version 2>&1))"
  exit 0
fi

if bin="$(find_nats_server)"; then
  echo "nats-server: $bin ($("$bin" --version 2>&1))"
  exit 0
fi

can_install=yes
if [[ "$(id -u)" -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  can_install=no
fi
command -v apt-get >/dev/null 2>&1 || can_install=no

if [[ "$can_install" == no ]]; then
  cat >&2 <<'MSG'
nats-server is not installed, and this script can only install it as root (or with
passwordless sudo) on a Debian/Ubuntu machine. Install it yourself, then run this again:

  Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y nats-server
  macOS:          brew install nats-server
  other:          download a release from https://github.com/nats-io/nats-server/releases
                  and put nats-server on your PATH (or set NATS_SERVER_BIN to its path)

Or skip the local broker: `NATS_URL=nats://host:4222 npm start` uses a JetStream broker you run.
MSG
  exit 1
fi

echo "nats-server not found: installing the Debian package with apt-get"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq nats-server

bin="$(find_nats_server)" || { echo "apt-get installed nats-server but it is still not found" >&2; exit 1; }
echo "nats-server: $bin ($("$bin" --version 2>&1))"
