#!/usr/bin/env bash
# Runs every bench/*_bench.ts (or the files given as arguments) under Deno and under Bun, with
# the runtimes installed from npm in node_modules/.bin. Exits 1 if any run failed.
#
#   bash bench/micro.sh                       # all of them
#   bash bench/micro.sh bench/mask_bench.ts   # some of them
set -u
cd "$(dirname "$0")/.."

deno=node_modules/.bin/deno
bun=node_modules/.bin/bun
for tool in "$deno" "$bun"; do
  if [ ! -x "$tool" ]; then
    echo "micro.sh: $tool is missing; run npm install first" >&2
    exit 1
  fi
done

if [ $# -gt 0 ]; then
  files=("$@")
else
  shopt -s nullglob
  files=(bench/*_bench.ts)
  if [ ${#files[@]} -eq 0 ]; then
    echo "micro.sh: no bench/*_bench.ts files" >&2
    exit 1
  fi
fi

# mitata colours its output unless NO_COLOR is set; keep logs plain.
[ -t 1 ] || export NO_COLOR=1

failed=()
for file in "${files[@]}"; do
  for runtime in deno bun; do
    echo
    echo "=== $runtime $file"
    start=$SECONDS
    if [ "$runtime" = deno ]; then
      "$deno" run -A "$file"
    else
      "$bun" "$file"
    fi
    status=$?
    echo "=== $runtime $file: exit $status after $((SECONDS - start)) s"
    if [ $status -ne 0 ]; then
      echo "=== FAILED ($status): $runtime $file"
      failed+=("$runtime $file")
    fi
  done
done

echo
if [ ${#failed[@]} -ne 0 ]; then
  echo "micro.sh: ${#failed[@]} run(s) failed:"
  printf '  %s\n' "${failed[@]}"
  exit 1
fi
echo "micro.sh: ${#files[@]} file(s) ran under deno and bun"
