#!/usr/bin/env bash
# System packages from Debian/Ubuntu: FFmpeg (Gradio's streaming player needs ffmpeg and ffprobe) and, with
# --test, Chromium for the browser tests (Playwright's own browser download cannot work offline).
set -e
want="ffmpeg"
[ "${1:-}" = "--test" ] && want="$want chromium"
missing=""
for pkg in $want; do
  exe=$pkg; [ "$pkg" = ffmpeg ] && exe=ffprobe
  command -v "$exe" >/dev/null || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
