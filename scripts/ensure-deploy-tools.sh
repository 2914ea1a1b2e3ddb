#!/usr/bin/env bash
# Installs the tools scripts/check-deploy.mjs uses offline, when they are missing:
# yamllint and promtool (Debian packages "yamllint" and "prometheus"), and nats-server
# (Debian "nats-server", 2.9.x: enough to test the config and its permissions).
# kubectl is optional (it only cross-checks the kustomize builds) and not installed here.
# Needs root and Debian's package lists; otherwise it says what is missing and exits 0,
# and the check prints SKIPPED for what it cannot run.
set -euo pipefail

missing=()
command -v yamllint >/dev/null 2>&1 || missing+=(yamllint)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)

if [ "${#missing[@]}" -eq 0 ]; then
  echo "ensure-deploy-tools: yamllint, promtool and nats-server are present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-deploy-tools: missing ${missing[*]}; not root or no apt-get, so not installing (checks will be SKIPPED)"
  exit 0
fi

echo "ensure-deploy-tools: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Never start the packaged daemons (prometheus, nats-server) on this machine: without a
# policy-rc.d (container images usually ship one), add one for the install only.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq
# --no-install-recommends keeps "prometheus" from pulling in exporters and the web UI
# assets; promtool is all we need.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "ensure-deploy-tools: installed ${missing[*]}"
