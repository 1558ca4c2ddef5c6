#!/bin/sh
# make stats: figures (R) and report.pdf (latexmk) for one run database.
#   thesis/stats.sh RUN.sqlite [SETS.csv]
# Output goes to the folder named after the run, beside the database:
# output/<run>/figures/*.pdf|png, output/<run>/report.pdf.
set -eu
db="$1"
sets="${2:-}"
here="$(cd "$(dirname "$0")" && pwd)"
[ -f "$db" ] || { echo "stats: no such database: $db" >&2; exit 1; }
out="$(dirname "$db")/$(basename "$db" .sqlite)"
mkdir -p "$out/figures"
Rscript "$here/stats.R" "$db" "$out" "$sets"
cp "$here/report.tex" "$out/report.tex"
cd "$out"
latexmk -pdf -interaction=nonstopmode -halt-on-error -quiet report.tex >latexmk.log 2>&1 || {
  tail -40 latexmk.log >&2; echo "stats: report.tex did not build (see $out/latexmk.log)" >&2; exit 1; }
latexmk -c >/dev/null 2>&1 || true
echo "stats: $out/report.pdf"
