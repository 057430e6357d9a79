#!/usr/bin/env bash
# Every check the project runs: lint, format, types, layer contract, Dockerfile
# lint, then the test suite. Fails if pytest ran no test. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
py=.venv/bin
step() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

step "ruff check";        $py/ruff check toolkit tests benchmarks
step "ruff format";       $py/ruff format --check toolkit tests benchmarks
step "mypy";              $py/mypy
step "import contracts";  $py/lint-imports --no-cache
step "hadolint";          $py/hadolint Dockerfile
step "pytest"
report=$(mktemp)
trap 'rm -f "$report"' EXIT
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
