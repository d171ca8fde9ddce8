#!/bin/sh
# Fetches the dashboard's chart library, plotly.js's cartesian bundle (bar, heatmap, pie, scatter and a few more:
# every trace the dashboard draws), from the npm registry with npm's own client, checks it against the registry's
# integrity hash, and puts it beside the dashboard's script. The page serves it itself (no CDN). The bundle is
# 1.5 MB against the full plotly.min.js's 4.8 MB (the plotly wheel ships only the full one), and a browser spends
# its time running the script, not fetching it: a third of the script is a third of that time.
# A new VERSION is a new file name: change PLOTLY in services/reporting/api/dashboard.py and INTEGRITY with it
# (`npm view plotly.js-cartesian-dist-min@VERSION dist.integrity`), and delete the old file.
set -eu
VERSION=4.1.1
INTEGRITY="sha512-o8GrFeusncwBIxbBynRJpY4pkgVB6caM+JLpwrLYbbsO7dZ8FJ+SVN2Fr+L7kiG/Z6w4P5O0Jus/Qr5EefHVeg=="
HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
npm pack --silent "plotly.js-cartesian-dist-min@$VERSION" >/dev/null
TARBALL="plotly.js-cartesian-dist-min-$VERSION.tgz"
GOT="sha512-$(openssl dgst -sha512 -binary "$TARBALL" | base64 -w0)"
[ "$GOT" = "$INTEGRITY" ] || { echo "integrity mismatch: $GOT" >&2; exit 1; }
tar xzf "$TARBALL"
cp package/plotly-cartesian.min.js "$HERE/services/reporting/static/plotly-cartesian-$VERSION.min.js"
echo "services/reporting/static/plotly-cartesian-$VERSION.min.js (MIT licence, in its first lines)"
