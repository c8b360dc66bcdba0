#!/usr/bin/env bash
# The benchmark suite in one command: installs the peers and targets, runs bench/ (about 15
# minutes on 2 cores), writes bench/results/latest.json and bench/RESULTS.md.
# Pass extra pytest arguments after it, e.g. `tools/bench.sh -k fig2`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh tools/bench-debian-packages.txt
python -m pip install -q "locust>=2.20" "pytest-benchmark>=4" "pytest-timeout>=2.2"
python -c "import numpy, pyarrow, pycurl, grpc" 2>/dev/null || python -m pip install -q -e .
ls replayer/_pacer*.so >/dev/null 2>&1 || python setup.py build_ext --inplace -q
mkdir -p bench/results
python -m pytest bench -p no:cacheprovider -q --benchmark-json bench/results/latest.json "$@"
python bench/report.py bench/results/latest.json -o bench/RESULTS.md
echo "wrote bench/RESULTS.md"
