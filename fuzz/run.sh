#!/usr/bin/env bash
# Runs every fuzz target for MINUTES each (default 5), one after another, and prints what each
# did: runs executed, coverage (edges and features), new corpus entries and crashes.
# Outside CI: a long, manual hardening run. Needs the nightly toolchain and cargo-fuzz.
#
#   fuzz/run.sh [MINUTES] [TARGET...]
#
# Builds go to $CARGO_TARGET_DIR (default the main target directory's fuzz/, ignored by git).
# Inputs that crash, time out or run out of memory are left in fuzz/artifacts/<target>/;
# reproduce one with `cargo +nightly fuzz run -O <target> <file>`.
set -euo pipefail

cd "$(dirname "$0")/.."
minutes="${1:-5}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(prom_text focus alertmanager_webhook config_toml theme_toml runbook_meta kube_projections)
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/fuzz}"
seconds=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')
logs="fuzz/logs"
mkdir -p "$logs"

cargo +nightly fuzz build -O

printf '%-22s %8s %12s %8s %8s %8s %s\n' target minutes runs cov ft new crashes
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  before=$(find "fuzz/artifacts/$t" -type f | wc -l)
  stamp=$(mktemp)
  log="$logs/$t.log"
  # -rss_limit_mb: a parser that needs 2 GiB for one input has a bug; -timeout: so has one that
  # takes 10 s. -jobs/-workers 1: one core; the machine is shared.
  set +e
  cargo +nightly fuzz run -O "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  new=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  after=$(find "fuzz/artifacts/$t" -type f | wc -l)
  printf '%-22s %8s %12s %8s %8s %8s %s\n' "$t" "$minutes" "${runs:-?}" "${cov:-?}" "${ft:-?}" \
    "${new:-?}" "$((after - before))"
  if [ "$after" -gt "$before" ]; then
    grep -m1 -E 'ERROR: libFuzzer|panicked at|==ERROR' "$log" | sed 's/^/    /' || true
    find "fuzz/artifacts/$t" -type f -newer "$stamp" | sed 's/^/    artifact: /'
  fi
  rm -f "$stamp"
done
echo "logs: $logs/<target>.log"
