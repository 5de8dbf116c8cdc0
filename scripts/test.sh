#!/usr/bin/env bash
# Every test layer, fastest first. Each layer runs even when an earlier one failed, and
# the script exits non-zero when any layer failed. Pick layers: scripts/test.sh pytest lint
# Layers: ruff pytest cluster lint build syntax molecule (molecule scenarios: MOLECULE_SCENARIOS="a b").
set -uo pipefail
cd "$(dirname "$0")/.."
export ANSIBLE_CONFIG="$PWD/ansible.cfg"
export MLOPS_UPSTREAM_DIR=${MLOPS_UPSTREAM_DIR:-$(realpath -m ../shared/upstream)}
export PY_COLORS=0 ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1

layers=("$@")
((${#layers[@]})) || layers=(ruff pytest cluster lint build syntax molecule)
passed=0
failed=0
failed_names=()

run_layer() {
  local name=$1
  shift
  echo
  echo "=== layer: $name"
  local start=$SECONDS
  if "$@"; then
    passed=$((passed + 1))
    echo "=== layer $name: ok ($((SECONDS - start))s)"
  else
    failed=$((failed + 1))
    failed_names+=("$name")
    echo "=== layer $name: FAILED ($((SECONDS - start))s)"
  fi
}

# Python lint of every Python file (pyproject.toml [tool.ruff]); seconds.
layer_ruff() { ruff check; }

layer_pytest() { pytest --ignore=tests/cluster; }

# A real kube-apiserver + etcd (+ controller manager) from $KUBEBUILDER_ASSETS or the
# kube-harness tarball ($MLOPS_KUBE_HARNESS, default ../shared/kube-harness/kube-harness.tar.xz);
# skipped, loudly, without binaries. Budget: 10 minutes on 2 cores.
layer_cluster() { pytest tests/cluster; }

layer_lint() { ansible-lint; }

layer_build() {
  rm -rf build/collection && mkdir -p build/collection &&
    ansible-galaxy collection build --force --output-path build/collection . &&
    tar -tzf build/collection/researchops-mlops-*.tar.gz > build/collection/contents.txt || return 1
  # The artifact holds the roles and plugins, and none of the checkout's local state.
  grep -qx 'roles/k3s_server/tasks/main.yml' build/collection/contents.txt &&
    grep -qx 'plugins/modules/k8s_apply.py' build/collection/contents.txt &&
    ! grep -qE '^(\.venv|collections|molecule|build)/' build/collection/contents.txt
}

layer_syntax() {
  local rc=0 pb
  for pb in site.yml playbooks/*.yml; do
    ansible-playbook --syntax-check -i inventories/lab "$pb" >/dev/null || { echo "syntax-check failed: $pb"; rc=1; }
  done
  # The installed-collection spelling resolves too.
  ansible-playbook --syntax-check -i inventories/lab researchops.mlops.site >/dev/null || { echo "syntax-check failed: researchops.mlops.site"; rc=1; }
  return $rc
}

layer_molecule() {
  bash molecule/resources/build-image.sh || return 1
  local rc=0 scenario
  local scenarios=(${MOLECULE_SCENARIOS:-$(for f in molecule/*/molecule.yml; do basename "$(dirname "$f")"; done)})
  for scenario in "${scenarios[@]}"; do
    echo "--- molecule test -s $scenario"
    local start=$SECONDS
    if molecule test -s "$scenario"; then
      echo "--- molecule $scenario: ok ($((SECONDS - start))s)"
    else
      echo "--- molecule $scenario: FAILED ($((SECONDS - start))s)"
      rc=1
    fi
  done
  return $rc
}

for layer in "${layers[@]}"; do
  case $layer in
    ruff | pytest | cluster | lint | build | syntax | molecule) run_layer "$layer" "layer_$layer" ;;
    *) echo "unknown layer: $layer (ruff pytest cluster lint build syntax molecule)" >&2; exit 2 ;;
  esac
done

echo
((failed)) && echo "failed layers: ${failed_names[*]}"
echo "test layers: $passed passed, $failed failed"
((failed == 0))
