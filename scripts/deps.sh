#!/usr/bin/env bash
# Installs the Debian packages grpo.c needs, only those that are missing.
set -euo pipefail
packages=(build-essential cmake pkg-config libyaml-dev libsqlite3-dev libpcre2-dev libjansson-dev
          libopenblas-openmp-dev libseccomp-dev bubblewrap python3
          openmpi-bin libopenmpi-dev
          chromium)   # headless browser for the report test (tests/test_report_browser_long.c)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi
