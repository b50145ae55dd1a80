#!/usr/bin/env bash
# Runs the test suite on a fresh machine: installs the Debian packages it needs if missing, installs
# Passage with its test extras into .venv, then runs pytest (arguments are passed on to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests use: the Mosquitto broker, libzbar (QR reading) and Chromium (console
# browser tests; Playwright drives /usr/bin/chromium and never downloads a browser).
missing=()
[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1 || missing+=(mosquitto)
ldconfig -p 2>/dev/null | grep -q 'libzbar\.so\.0' || missing+=(libzbar0)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[embedded,test]'
exec .venv/bin/python -m pytest "$@"
