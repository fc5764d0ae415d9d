#!/usr/bin/env bash
# Records benchmark tables for the documentation's performance page: one file per suite,
# docs/benchmarks/<suite>.md, holding the exact command, the commit, the date, the machine and
# the table `python -m benchmarks.run` printed. Needs an in-tree build (python/dropnet/_core*.so)
# and torch==2.13.0 for the peer columns.
#   tools/record_benchmarks.sh                      # the default suites at 1 thread
#   THREADS=1,2 tools/record_benchmarks.sh dropout  # chosen suites and thread counts
#   ARGS=--quick tools/record_benchmarks.sh cnn_epoch  # extra arguments for benchmarks.run
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${THREADS:-1}
extra=${ARGS:-}
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(philox dropout gemm train_step sparse_train)
py=${PYTHON:-python3}
mkdir -p docs/benchmarks
for suite in "${suites[@]}"; do
  out=docs/benchmarks/$suite.md
  cmd="PYTHONPATH=python:. $py -m benchmarks.run $suite --threads $threads${extra:+ $extra}"
  echo "+ $cmd" >&2
  # shellcheck disable=SC2086  # ARGS is a list of words
  log=$(PYTHONPATH=python:. "$py" -m benchmarks.run "$suite" --threads "$threads" $extra)
  cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
  {
    echo "Command: \`$cmd\`"
    echo
    echo "Commit \`$(git rev-parse --short HEAD)\`, $(date -u +%Y-%m-%d), CPU: ${cpu:-unknown}, $(nproc) cores."
    echo
    # The run's own header (machine, peer version, load) as a list, then its final table.
    echo "$log" | sed -n 's/^# \(.*\)$/- \1/p'
    echo
    # The final table (the harness prints each row as it runs, then the whole table again); a suite
    # with a table of its own (memory: the harness's table has no rows) prints it once: then the
    # last table of the log.
    table=$(echo "$log" | awk 'BEGIN{n=0} /^\| case /{n++} n==2{print}')
    [ "$(echo "$table" | grep -c '^|')" -gt 2 ] || table=$(echo "$log" | awk '/^\|/{if(!t){b=""; n=0; t=1} b=b $0 "\n"; n++; if(n>2) k=b; next} {t=0} END{printf "%s", k}')
    echo "$table"
    # The run's thread scaling (benchmarks/harness.py, scaling_table), when it measured 1 thread
    # and more: median at 1 thread ÷ median at n threads, per case and side.
    scaling=$(echo "$log" | awk '/^\| case \| side \| threads n /{p=1} p&&/^\|/{print; next} p{exit}')
    [ -z "$scaling" ] || printf '\nThread scaling, same run:\n\n%s\n' "$scaling"
  } > "$out"
  echo "wrote $out" >&2
  if [ "$suite" = mlp_sweep ]; then  # its points, for the performance page's figure (docs/figures/mlp_sweep.py)
    cp bench_out/mlp_sweep.csv docs/benchmarks/mlp_sweep.csv
    echo "wrote docs/benchmarks/mlp_sweep.csv" >&2
  fi
done
