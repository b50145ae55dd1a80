#!/usr/bin/env bash
# Runs the test suite on a fresh machine: installs Debian's mosquitto if it is missing, installs
# Passage with its test extras into .venv, then runs pytest (arguments are passed on to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mosquitto >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[embedded,test]'
exec .venv/bin/python -m pytest "$@"
