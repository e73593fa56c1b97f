#!/usr/bin/env bash
# Debian's Chromium for the browser tests (Playwright's own browser download cannot work offline).
set -e
command -v chromium >/dev/null && exit 0
if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
$sudo apt-get update -qq && $sudo apt-get install -y -qq chromium >/dev/null
