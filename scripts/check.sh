#!/usr/bin/env bash
# Every check the project runs: lint, format, types, layer contract, Dockerfile
# lint, the test suite, then the tests of every compiled module again on a build compiled by mypyc
# (setup.py: what `pip install .` gives a user). Fails if a pytest run ran no test.
# Extra arguments go to the first pytest run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
py=.venv/bin
step() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# pytest, then fail unless at least one test ran.
run_pytest() {
    local report="$work/junit.xml"
    rm -f "$report"
    $py/pytest -p no:cacheprovider --junitxml="$report" "$@"
    $py/python - "$report" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root)
ran = sum(int(s.get("tests", 0)) - int(s.get("skipped", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print(f"pytest: {ran} tests ran, {skipped} skipped", file=sys.stderr)
if ran == 0:
    sys.exit("error: no test ran")
PY
}

step "ruff check";        $py/ruff check toolkit tests benchmarks setup.py
step "ruff format";       $py/ruff format --check toolkit tests benchmarks setup.py
step "mypy";              $py/mypy && $py/mypy setup.py benchmarks/{run,bench_replay,bench_replay_table,bench_analytics,bench_responder,bench_checksum,bench_drill,bench_flood,bench_loss,replay_phases,responder_phases}.py
step "import contracts";  $py/lint-imports --no-cache
step "hadolint";          $py/hadolint Dockerfile
step "pytest"
run_pytest "$@"

step "replay's, the core's, the wire's, the codecs' and the responder's tests on the mypyc-compiled build"
$py/python -m pip install -q --no-deps --target "$work/compiled" .
# L4KIT_EXPECT_COMPILED: tests/conftest.py fails the run unless l4kit comes from there, compiled.
# A compiled module checks its annotations at run time: these are the tests of every
# compiled module (setup.py), the live ones with real clients through the responder.
PYTHONPATH="$work/compiled" L4KIT_EXPECT_COMPILED=1 run_pytest -q tests/unit/test_replay_*.py tests/unit/test_liveplay.py \
    tests/live/test_replay_tshark.py tests/unit/core tests/unit/test_*codec*.py tests/unit/test_wire_*.py \
    tests/live/test_respond_{capture,clients,flood,render,timers}.py
