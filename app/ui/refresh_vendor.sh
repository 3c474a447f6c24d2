#!/usr/bin/env bash
# Refreshes app/ui/static/vendor/ from the npm registry: `bash app/ui/refresh_vendor.sh`.
# Change a version here and in app/ui/static/vendor/README.md (and the paths in
# app/ui/templates/, tests/api/test_security_headers.py) together.
# Needs npm only to download (`npm pack`); nothing is built.
set -euo pipefail
UPLOT=1.6.32 SWAGGER=5.35.0 REDOC=2.5.4
VENDOR="$(cd "$(dirname "$0")" && pwd)/static/vendor"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
npm pack --silent "uplot@$UPLOT" "swagger-ui-dist@$SWAGGER" "redoc@$REDOC" >/dev/null
sha256sum ./*.tgz
for tgz in ./*.tgz; do mkdir "${tgz%.tgz}" && tar xzf "$tgz" -C "${tgz%.tgz}"; done

rm -rf "$VENDOR"/uplot-* "$VENDOR"/swagger-ui-dist-* "$VENDOR"/redoc-*
mkdir -p "$VENDOR/uplot-$UPLOT" "$VENDOR/swagger-ui-dist-$SWAGGER" "$VENDOR/redoc-$REDOC"
P="uplot-$UPLOT/package"
cp "$P/LICENSE" "$P/dist/uPlot.iife.min.js" "$P/dist/uPlot.min.css" "$VENDOR/uplot-$UPLOT/"
P="swagger-ui-dist-$SWAGGER/package"
cp "$P/LICENSE" "$P/NOTICE" "$P/swagger-ui-bundle.js" "$P/swagger-ui-bundle.js.LICENSE.txt" "$P/swagger-ui.css" \
   "$VENDOR/swagger-ui-dist-$SWAGGER/"
P="redoc-$REDOC/package"
cp "$P/LICENSE" "$P/bundles/redoc.standalone.js" "$P/bundles/redoc.standalone.js.LICENSE.txt" "$VENDOR/redoc-$REDOC/"

# Redoc's sidebar always shows Redocly's logo from cdn.redoc.ly: offline it cannot load, and
# the Content-Security-Policy refuses it (a console error). An empty inline image instead.
LOGO='https://cdn.redoc.ly/redoc/logo-mini.svg'
grep -q "$LOGO" "$VENDOR/redoc-$REDOC/redoc.standalone.js"
sed -i "s|$LOGO|data:image/svg+xml,%3Csvg xmlns=%27http://www.w3.org/2000/svg%27/%3E|" \
    "$VENDOR/redoc-$REDOC/redoc.standalone.js"
if grep -q 'cdn.redoc.ly' "$VENDOR/redoc-$REDOC/redoc.standalone.js"; then echo "cdn.redoc.ly still named" >&2; exit 1; fi
echo "vendored into $VENDOR"
