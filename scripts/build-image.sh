#!/usr/bin/env bash
# The container image's build steps, in one place: the Dockerfile runs this
# script, and CI runs the same script in a scratch directory, so what CI checks
# is what the image gets.
#
#   scripts/build-image.sh --from SRC DIR          # the relay: runtime deps, dist/, migrations/, sql/
#   scripts/build-image.sh --from SRC --demo DIR   # the demo producer: all deps, src/, scripts/producer.ts
#   scripts/build-image.sh --list-inputs [--demo]  # the files it copies from SRC, one a line
#
# It copies only its inputs from SRC into DIR (a new or empty directory), then
# installs, compiles and, for the relay, drops the dev dependencies, all inside
# DIR. It refuses a DIR that is (or is inside) a git checkout, so it can never
# prune the node_modules or replace the dist/ of a working copy.
set -euo pipefail

# What the relay image is built from. Everything else in the repository
# (tests, docs, bench, scripts) stays out of it.
INPUTS=(package.json package-lock.json tsconfig.json tsconfig.build.json tsconfig.cjs.json src migrations sql)
# The demo producer runs from TypeScript source with tsx (a dev dependency).
DEMO_INPUTS=(scripts/producer.ts)

usage() {
  echo "usage: scripts/build-image.sh --from SRC [--demo] DIR | --list-inputs [--demo]" >&2
  exit 2
}

from='' dir='' demo=false list=false
while (($# > 0)); do
  case $1 in
  --from)
    (($# >= 2)) || usage
    from=$2
    shift 2
    ;;
  --demo)
    demo=true
    shift
    ;;
  --list-inputs)
    list=true
    shift
    ;;
  -*) usage ;;
  *)
    [[ -z $dir ]] || usage
    dir=$1
    shift
    ;;
  esac
done

inputs=("${INPUTS[@]}")
if $demo; then inputs+=("${DEMO_INPUTS[@]}"); fi

if $list; then
  printf '%s\n' "${inputs[@]}"
  exit 0
fi
[[ -n $from && -n $dir ]] || usage

mkdir -p "$dir"
dir=$(cd "$dir" && pwd -P)
from=$(cd "$from" && pwd -P)
if [[ $dir == "$from" ]] || git -C "$dir" rev-parse --git-dir >/dev/null 2>&1; then
  echo "build-image.sh: refusing to build in $dir: it is a source tree or inside a git checkout" >&2
  exit 2
fi
if [[ -n $(ls -A "$dir") ]]; then
  echo "build-image.sh: $dir is not empty" >&2
  exit 2
fi

for input in "${inputs[@]}"; do
  mkdir -p "$dir/$(dirname "$input")"
  cp -R "$from/$input" "$dir/$input"
done
cd "$dir"

# No install scripts: the runtime dependencies are plain JavaScript, and the
# dev tools' native add-ons (ssh2, cpu-features) are not needed to build.
# --include=dev whatever NODE_ENV says: tsc (and tsx for the demo) are dev dependencies.
npm ci --include=dev --ignore-scripts --no-audit --no-fund
if $demo; then
  exit 0
fi
npm run build
npm prune --omit=dev --ignore-scripts --no-audit --no-fund
# Only the compiled JavaScript ships: the sources were inputs to tsc, and
# pruning leaves the emptied scope directories (@biomejs, @vitest, ...) behind.
rm -rf src tsconfig.json tsconfig.build.json tsconfig.cjs.json
find node_modules -mindepth 1 -maxdepth 1 -type d -empty -delete
