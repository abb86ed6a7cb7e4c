#!/usr/bin/env bash
# Download the T2M evaluators (Guo et al. text_mot_match + Comp_v6_KLD005 options + VQVAEV3 meta statistics).
#
#   bash prepare/download_extractor.sh                   # HumanML3D and KIT-ML -> ./checkpoints/{t2m,kit}/
#   bash prepare/download_extractor.sh --dataset t2m     # HumanML3D only
#   bash prepare/download_extractor.sh --root /data/irg --force
#
# Source: the authors' t2m.zip / kit.zip (T2M-GPT prepare/download_extractor.sh, Google Drive ids below),
# fetched with gdown --continue when installed, else curl -C - (both resume a partial download). Zips are
# kept in <root>/checkpoints/.downloads/ until verified and unpacked. sha256 sums are checked against
# --checksums FILE (sha256sum format, default prepare/CHECKSUMS.sha256 when present); with no recorded sum
# the computed one is printed so that you can record it. Offline: place the zip there by hand and re-run.
# Network calls have connect/stall timeouts, so the script never hangs.
set -euo pipefail

declare -A DRIVE_IDS=([t2m]=1o7RTDQcToJjTm9_mNWTyzvZvjTWpZfug [kit]=1tX79xk0fflp07EZ660Xz1RAFE33iEyJR)

root=.
checksums="$(dirname "$0")/CHECKSUMS.sha256"
force=0
datasets=(t2m kit)
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=$2; shift 2 ;;
    --checksums) checksums=$2; shift 2 ;;
    --dataset)
      case "$2" in t2m|kit) datasets=("$2") ;; all) datasets=(t2m kit) ;;
        *) echo "--dataset must be t2m, kit or all" >&2; exit 64 ;; esac
      shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 64 ;;
  esac
done

cache="$root/checkpoints/.downloads"

expected_files() {  # files the evaluation needs from <dataset>.zip
  echo "checkpoints/$1/text_mot_match/model/finest.tar checkpoints/$1/Comp_v6_KLD005/opt.txt" \
       "checkpoints/$1/VQVAEV3_CB1024_CMT_H1024_NRES3/meta/mean.npy" \
       "checkpoints/$1/VQVAEV3_CB1024_CMT_H1024_NRES3/meta/std.npy"
}

all_present() {
  local f
  for f in $(expected_files "$1"); do [ -s "$root/$f" ] || return 1; done
}

manual_help() {  # dataset message
  cat >&2 <<EOF
download_extractor: $2
  Download it by hand: https://drive.google.com/file/d/${DRIVE_IDS[$1]}/view
  save it as $cache/$1.zip and re-run this script (it verifies and unpacks it),
  or unzip it inside $root/checkpoints/ so that $root/checkpoints/$1/text_mot_match/model/finest.tar exists.
EOF
  exit 2
}

valid_zip() { [ -s "$1" ] && unzip -tq "$1" >/dev/null 2>&1; }

fetch() {  # dataset zip_path
  mkdir -p "$cache"
  curl -sS -o /dev/null --head --connect-timeout 10 --max-time 30 "https://drive.google.com" 2>/dev/null \
    || manual_help "$1" "cannot reach drive.google.com (offline?)."
  echo "download_extractor: downloading $1.zip (resumable)" >&2
  if command -v gdown >/dev/null 2>&1; then
    timeout 3600 gdown --continue -O "$2" "https://drive.google.com/uc?id=${DRIVE_IDS[$1]}" \
      || manual_help "$1" "gdown failed."
  else
    curl -L --fail -C - --connect-timeout 20 --speed-limit 1024 --speed-time 60 --retry 3 -o "$2" \
      "https://drive.usercontent.google.com/download?id=${DRIVE_IDS[$1]}&export=download&confirm=t" \
      || manual_help "$1" "curl failed."
  fi
  valid_zip "$2" || { mv -f "$2" "$2.bad"; manual_help "$1" "the download is not a zip file \
(Google Drive quota or login page; kept as $2.bad)."; }
}

verify_checksum() {  # dataset zip_path
  local name sum recorded
  name=$(basename "$2")
  sum=$(sha256sum "$2" | cut -d' ' -f1)
  recorded=$( { [ -f "$checksums" ] && awk -v n="$name" '$2 == n || $2 == "*" n {print $1}' "$checksums"; } || true)
  if [ -z "$recorded" ]; then
    echo "download_extractor: sha256 $sum $name (no recorded sum; add the line '$sum  $name' to $checksums)" >&2
  elif [ "$recorded" != "$sum" ]; then
    mv -f "$2" "$2.bad"
    manual_help "$1" "sha256 mismatch for $name: got $sum, expected $recorded (kept as $2.bad)."
  else
    echo "download_extractor: sha256 verified ($name)" >&2
  fi
}

for dataset in "${datasets[@]}"; do
  if all_present "$dataset" && [ "$force" = 0 ]; then
    echo "download_extractor: $root/checkpoints/$dataset already complete (use --force to redo)" >&2
    continue
  fi
  zip_path="$cache/$dataset.zip"
  [ "$force" = 1 ] && rm -f "$zip_path"
  valid_zip "$zip_path" || fetch "$dataset" "$zip_path"
  verify_checksum "$dataset" "$zip_path"
  unzip -oq "$zip_path" -d "$root/checkpoints"
  all_present "$dataset" || manual_help "$dataset" "$dataset.zip did not contain: $(expected_files "$dataset")."
  rm -f "$zip_path"
  echo "download_extractor: done -> $root/checkpoints/$dataset" >&2
done
