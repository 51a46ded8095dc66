#!/usr/bin/env bash
# Make sure Debian's chromium is installed for the dashboard browser tests (Playwright drives it through
# executable_path=/usr/bin/chromium; `playwright install` is never used, it downloads a browser).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
echo "installing Debian chromium for the dashboard tests" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
test -x /usr/bin/chromium
