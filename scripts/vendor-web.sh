#!/usr/bin/env bash
# Rebuilds the web console's vendored libraries from web/package-lock.json:
#   scripts/vendor-web.sh
# `npm ci` fetches exactly the locked tarballs (checked against their `integrity`), then the
# files listed in FILES are copied into src/jarvis/web/static/vendor/ and
# MANIFEST.json records, for each, its package, version, tarball integrity and sha256.
# tests/web/test_vendor.py fails when the committed files differ from what this produces.
# Needs Node.js and npm; nothing of this runs at install or run time.
set -euo pipefail
cd "$(dirname "$0")/.."

VENDOR=src/jarvis/web/static/vendor
# package  path-in-package  path-in-vendor-folder
FILES=(
  "marked lib/marked.esm.js marked/marked.esm.js"
  "marked LICENSE marked/LICENSE"
  "dompurify dist/purify.es.mjs dompurify/purify.es.mjs"
  "dompurify LICENSE dompurify/LICENSE"
  "@highlightjs/cdn-assets es/highlight.min.js highlightjs/highlight.min.js"
  "@highlightjs/cdn-assets LICENSE highlightjs/LICENSE"
)

(cd web && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
rm -rf "$VENDOR"
for line in "${FILES[@]}"; do
  read -r package source target <<<"$line"
  mkdir -p "$(dirname "$VENDOR/$target")"
  cp "web/node_modules/$package/$source" "$VENDOR/$target"
done
printf '%s\n' "${FILES[@]}" | python3 scripts/vendor_manifest.py web/package-lock.json "$VENDOR"
echo "vendored into $VENDOR:"
(cd "$VENDOR" && find . -type f | sort)
