#!/usr/bin/env bash
# Create (or refresh) the project virtualenv with every pinned Python dependency.
# Re-running is cheap: nothing is installed when the requirement files did not change.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv}
python=${PYTHON:-python3}

"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
reqs=(requirements.txt requirements-test.txt examples/mnist/requirements.txt)
present=()
for r in "${reqs[@]}"; do [[ -f $r ]] && present+=("$r"); done
stamp="$venv/.researchops-requirements.sha256"
want=$(cat "${present[@]}" | sha256sum | cut -d' ' -f1)

if [[ -x $venv/bin/python && -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi
[[ -x $venv/bin/python ]] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
args=()
for r in "${present[@]}"; do args+=(-r "$r"); done
"$venv/bin/python" -m pip install --quiet "${args[@]}"
echo "$want" > "$stamp"
echo "setup: $venv ready ($("$venv/bin/ansible" --version | head -1))"
