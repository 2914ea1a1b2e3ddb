#!/usr/bin/env bash
# Installs the tools that scripts/check-deploy.mjs and test/mesh/metrics.e2e-spec.ts run
# offline, when they are missing: yamllint and promtool (Debian packages "yamllint" and
# "prometheus") and nats-server (Debian "nats-server", 2.9.x: enough to test the config and
# its permissions). Non-interactive: apt-get as root, or through passwordless sudo.
#
# kubectl (its `kubectl kustomize` cross-checks the kustomize builds) is not installed here:
# Debian's kubernetes-client is kubectl 1.20, whose kustomize predates the `patches` and
# `replicas` fields our kustomizations use, and no other source is reachable from the
# project's machines (their image ships a current kubectl). Without it, that one optional
# cross-check is skipped, even with CI=true: the same builds are checked without it.
#
# What is still missing at the end is listed. With CI=true that is a failure (exit 1): the
# checks that need it would be SKIPPED, and CI must not pass without them. Otherwise it
# exits 0 and the checks print SKIPPED.
set -euo pipefail

strict=no
[[ "${CI:-}" =~ ^([Tt][Rr][Uu][Ee]|1)$ ]] && strict=yes

# Debian installs nats-server in /usr/sbin, which is often not on a non-root user's PATH.
have() { command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" ]]; }

declare -A package_of=([yamllint]=yamllint [promtool]=prometheus [nats-server]=nats-server)

missing_tools() {
  local tool
  for tool in yamllint promtool nats-server; do have "$tool" || echo "$tool"; done
}

finish() {
  local missing
  missing="$(missing_tools | tr '\n' ' ')"
  if [[ -z "${missing// /}" ]]; then
    echo "ensure-deploy-tools: yamllint, promtool and nats-server are present"
    have kubectl || echo "ensure-deploy-tools: no kubectl: its optional kustomize cross-check will be skipped (see the header of this script)"
    exit 0
  fi
  echo "ensure-deploy-tools: still missing: ${missing% }" >&2
  if [[ "$strict" == yes ]]; then
    echo "ensure-deploy-tools: CI=$CI: failing, since checks would be SKIPPED without these tools" >&2
    exit 1
  fi
  echo "ensure-deploy-tools: the checks that need them will print SKIPPED"
  exit 0
}

packages=()
for tool in yamllint promtool nats-server; do
  have "$tool" || packages+=("${package_of[$tool]}")
done
[[ "${#packages[@]}" -eq 0 ]] && finish

if [[ "$(id -u)" -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "ensure-deploy-tools: not root and no passwordless sudo: cannot install ${packages[*]}" >&2
  finish
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-deploy-tools: no apt-get: install ${packages[*]} (Debian names) yourself" >&2
  finish
fi

echo "ensure-deploy-tools: installing ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
# Never start the packaged daemons (prometheus, nats-server) on this machine: without a
# policy-rc.d (container images usually ship one), add one for the install only.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee /usr/sbin/policy-rc.d >/dev/null
  "${as_root[@]}" chmod +x /usr/sbin/policy-rc.d
  trap '"${as_root[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
fi
"${as_root[@]}" apt-get update -qq
# --no-install-recommends keeps "prometheus" from pulling in exporters and the web UI
# assets; promtool is all we need.
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${packages[@]}" >/dev/null
echo "ensure-deploy-tools: installed ${packages[*]}"
finish
