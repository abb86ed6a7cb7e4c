#!/usr/bin/env bash
# Download the GloVe vocabulary of the T2M evaluator (glove/our_vab_{data.npy,words.pkl,idx.pkl}).
#
#   bash prepare/download_glove.sh                       # -> ./glove/
#   bash prepare/download_glove.sh --root /data/irg      # -> /data/irg/glove/
#   bash prepare/download_glove.sh --force               # re-download and re-extract
#
# Source: the authors' glove.zip (T2M-GPT prepare/download_glove.sh, Google Drive id below), fetched with
# gdown --continue when installed, else curl -C - (both resume a partial download). The zip is kept in
# <root>/checkpoints/.downloads/ until it has been verified and unpacked. Its sha256 is checked against
# --checksums FILE (sha256sum format, default prepare/CHECKSUMS.sha256 when present); with no recorded sum
# the computed one is printed so that you can record it. Offline: place glove.zip there by hand and re-run.
# Network calls have connect/stall timeouts, so the script never hangs.
set -euo pipefail

DRIVE_ID=1bCeS6Sh_mLVTebxIgiUHgdPrroW06mb6
ZIP_NAME=glove.zip
EXPECTED=(glove/our_vab_data.npy glove/our_vab_words.pkl glove/our_vab_idx.pkl)

root=.
checksums="$(dirname "$0")/CHECKSUMS.sha256"
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=$2; shift 2 ;;
    --checksums) checksums=$2; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 64 ;;
  esac
done

cache="$root/checkpoints/.downloads"
zip_path="$cache/$ZIP_NAME"
view_url="https://drive.google.com/file/d/$DRIVE_ID/view"

all_present() {
  local f
  for f in "${EXPECTED[@]}"; do [ -s "$root/$f" ] || return 1; done
}

manual_help() {
  cat >&2 <<EOF
download_glove: $1
  Download it by hand: $view_url
  save it as $zip_path and re-run this script (it verifies and unpacks it),
  or unzip it yourself so that $root/glove/our_vab_data.npy exists.
EOF
  exit 2
}

valid_zip() { [ -s "$1" ] && unzip -tq "$1" >/dev/null 2>&1; }

fetch() {
  mkdir -p "$cache"
  curl -sS -o /dev/null --head --connect-timeout 10 --max-time 30 "https://drive.google.com" 2>/dev/null \
    || manual_help "cannot reach drive.google.com (offline?)."
  echo "download_glove: downloading $ZIP_NAME (resumable)" >&2
  if command -v gdown >/dev/null 2>&1; then
    timeout 3600 gdown --continue -O "$zip_path" "https://drive.google.com/uc?id=$DRIVE_ID" \
      || manual_help "gdown failed."
  else
    curl -L --fail -C - --connect-timeout 20 --speed-limit 1024 --speed-time 60 --retry 3 -o "$zip_path" \
      "https://drive.usercontent.google.com/download?id=$DRIVE_ID&export=download&confirm=t" \
      || manual_help "curl failed."
  fi
  valid_zip "$zip_path" || { mv -f "$zip_path" "$zip_path.bad"; manual_help "the download is not a zip file \
(Google Drive quota or login page; kept as $zip_path.bad)."; }
}

verify_checksum() {
  local sum recorded
  sum=$(sha256sum "$zip_path" | cut -d' ' -f1)
  recorded=$( { [ -f "$checksums" ] && awk -v n="$ZIP_NAME" '$2 == n || $2 == "*" n {print $1}' "$checksums"; } || true)
  if [ -z "$recorded" ]; then
    echo "download_glove: sha256 $sum $ZIP_NAME (no recorded sum; add the line '$sum  $ZIP_NAME' to $checksums)" >&2
  elif [ "$recorded" != "$sum" ]; then
    mv -f "$zip_path" "$zip_path.bad"
    manual_help "sha256 mismatch for $ZIP_NAME: got $sum, expected $recorded (kept as $zip_path.bad)."
  else
    echo "download_glove: sha256 verified ($ZIP_NAME)" >&2
  fi
}

if all_present && [ "$force" = 0 ]; then
  echo "download_glove: $root/glove already complete (use --force to redo)" >&2
  exit 0
fi
[ "$force" = 1 ] && rm -f "$zip_path"
valid_zip "$zip_path" || fetch
verify_checksum
unzip -oq "$zip_path" -d "$root"
all_present || manual_help "$ZIP_NAME did not contain ${EXPECTED[*]}."
rm -f "$zip_path"
echo "download_glove: done -> $root/glove" >&2
