#!/usr/bin/env bash
# Every test layer, fastest first. Each layer runs even when an earlier one failed, and
# the script exits non-zero when any layer failed. Pick layers: scripts/test.sh pytest lint
# Layers: pytest lint build syntax molecule (molecule scenarios: MOLECULE_SCENARIOS="a b").
set -uo pipefail
cd "$(dirname "$0")/.."
export ANSIBLE_CONFIG="$PWD/ansible.cfg"
export MLOPS_UPSTREAM_DIR=${MLOPS_UPSTREAM_DIR:-$(realpath -m ../shared/upstream)}
export PY_COLORS=0 ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1

layers=("$@")
((${#layers[@]})) || layers=(pytest lint build syntax molecule)
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

layer_pytest() { pytest; }

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

# Scenarios run MOLECULE_JOBS at a time (default 2: the CI machine's cores; they share the
# image built once); each one's log goes to build/molecule/<scenario>.log and its time is
# printed, longest scenarios first so that the pool drains evenly.
molecule_one() {
  local scenario=$1 start=$SECONDS rc=0
  molecule test -s "$scenario" > "build/molecule/$scenario.log" 2>&1 || rc=$?
  if ((rc == 0)); then
    echo "--- molecule $scenario: ok ($((SECONDS - start))s)"
  else
    echo "--- molecule $scenario: FAILED ($((SECONDS - start))s), last lines of build/molecule/$scenario.log:"
    tail -n 40 "build/molecule/$scenario.log"
  fi
  return $rc
}
export -f molecule_one

layer_molecule() {
  bash molecule/resources/build-image.sh || return 1
  mkdir -p build/molecule
  local order="k3s_server k3s_agent firewall docker_repo nvidia_runtime docker prereqs nfs_server nfs_client"
  local all scenarios=() scenario
  all=$(for f in molecule/*/molecule.yml; do basename "$(dirname "$f")"; done)
  if [[ -n ${MOLECULE_SCENARIOS:-} ]]; then
    read -ra scenarios <<< "$MOLECULE_SCENARIOS"
  else
    for scenario in $order; do grep -qx "$scenario" <<< "$all" && scenarios+=("$scenario"); done
    for scenario in $all; do [[ " ${scenarios[*]} " == *" $scenario "* ]] || scenarios+=("$scenario"); done
  fi
  printf '%s\n' "${scenarios[@]}" | xargs -P "${MOLECULE_JOBS:-2}" -I{} bash -c 'molecule_one "$1"' _ {}
}

for layer in "${layers[@]}"; do
  case $layer in
    pytest | lint | build | syntax | molecule) run_layer "$layer" "layer_$layer" ;;
    *) echo "unknown layer: $layer (pytest lint build syntax molecule)" >&2; exit 2 ;;
  esac
done

echo
((failed)) && echo "failed layers: ${failed_names[*]}"
echo "test layers: $passed passed, $failed failed"
((failed == 0))
