#!/usr/bin/env bash
# Install what the project needs on a fresh Debian/Ubuntu machine: system packages (when missing and
# we may install them), the virtual environment and the pinned Python packages.
set -euo pipefail
cd "$(dirname "$0")/.."

want_dev=${1:-}
python=${PYTHON:-python3}

missing=()
pkg-config --exists mysqlclient 2>/dev/null || missing+=(pkg-config default-libmysqlclient-dev)
# A CJK font, so Chinese subtitles and name tags are glyphs, not boxes (engines/images.py finds it).
cjk_font=
for font in /usr/share/fonts/truetype/wqy/wqy-*.ttc /usr/share/fonts/opentype/noto/NotoSansCJK-*.ttc; do
  [ -e "$font" ] && cjk_font=$font
done
[ -n "$cjk_font" ] || missing+=(fonts-wqy-zenhei)
if [ "$want_dev" = "dev" ] && ! command -v chromium >/dev/null 2>&1; then
  missing+=(chromium)  # the admin browser tests drive Debian's Chromium
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing system packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "Missing system packages: ${missing[*]}. Install them (apt-get install ${missing[*]}) and run again." >&2
    exit 1
  fi
fi

[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
requirements=requirements.txt
[ "$want_dev" = "dev" ] && requirements=requirements-dev.txt
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
