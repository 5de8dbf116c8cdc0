#!/usr/bin/env bash
# Every test layer, fastest first. Each layer runs even when an earlier one failed, and
# the script exits non-zero when any layer failed. Pick layers: scripts/test.sh pytest lint
# Layers: ruff pytest cluster lint build syntax galaxy molecule (molecule scenarios: MOLECULE_SCENARIOS="a b").
set -uo pipefail
cd "$(dirname "$0")/.."
export ANSIBLE_CONFIG="$PWD/ansible.cfg"
export MLOPS_UPSTREAM_DIR=${MLOPS_UPSTREAM_DIR:-$(realpath -m ../shared/upstream)}
export PY_COLORS=0 ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1

layers=("$@")
((${#layers[@]})) || layers=(ruff pytest cluster lint build syntax galaxy molecule)
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

# What Galaxy and the Ansible docsite run on a collection, on the built artifact, plus a
# render from the installed collection. Tools that pin their own ansible-core / lint get
# their own venvs under .cache (created here, from the package index).
galaxy_venv() { # galaxy_venv DIR PACKAGE...: a venv with exactly these pins (cached)
  local dir=$1
  shift
  local want="$*"
  [[ -x $dir/bin/python && $(cat "$dir/.pins" 2>/dev/null) == "$want" ]] && return 0
  rm -rf "$dir" && python3 -m venv "$dir" && "$dir/bin/pip" install --quiet "$@" && echo "$want" > "$dir/.pins"
}

layer_galaxy() {
  local out=$PWD/build/galaxy rc=0 ansible_pin core_pin
  ansible_pin=$(grep -E '^ansible==' requirements.txt)
  core_pin=$(grep -E '^ansible-core==' requirements.txt)
  rm -rf "$out" && mkdir -p "$out" &&
    ansible-galaxy collection build --force --output-path "$out" . >/dev/null || return 1
  local tarball=("$out"/researchops-mlops-*.tar.gz)

  echo "--- galaxy-importer (the checks Galaxy runs on import)"
  # The importer runs ansible-doc and ansible-lint on the unpacked artifact; the collections
  # it depends on come from the `ansible` package, as they would be installed beside it.
  galaxy_venv .cache/galaxy-venv galaxy-importer==0.4.44 "$ansible_pin" "$core_pin" || return 1
  (cd "$out" && PATH=$PWD/../../.cache/galaxy-venv/bin:$PATH \
    python -m galaxy_importer.main "${tarball[0]}" > importer.log 2>&1) || rc=1
  # Every ERROR/WARNING fails the layer but one notice: the importer announces any ignore file
  # ("Ignore files skip ansible-test sanity tests"). Ours holds only entries with a documented
  # reason (Apache-2.0 headers validate-modules cannot read, test stand-ins' interpreter lines).
  grep -E '^(ERROR|WARNING)' "$out/importer.log" | grep -v '^WARNING: Ignore files skip ansible-test sanity tests, found ignore-' &&
    { echo "galaxy-importer reported the lines above"; rc=1; }
  grep -q 'Importer processing completed successfully' "$out/importer.log" || { cat "$out/importer.log"; rc=1; }

  echo "--- ansible-test sanity + units (from .../ansible_collections/researchops/mlops)"
  local tree=$out/ansible_collections/researchops/mlops deps
  mkdir -p "$tree" && git ls-files -co --exclude-standard -z | grep -zv '^collections/' |
    xargs -0 cp --parents -t "$tree" || return 1
  (cd "$tree" && git init -q . && git add -A) || return 1
  # Dependencies beside it, from the `ansible` package (no Galaxy access needed).
  deps=$(python -c 'import ansible_collections as a; print(list(a.__path__)[0])')
  for c in kubernetes/core community/general community/crypto ansible/posix ansible/utils amazon/aws; do
    mkdir -p "$out/ansible_collections/${c%/*}" && ln -sfn "$deps/$c" "$out/ansible_collections/$c"
  done
  galaxy_venv .cache/sanity-venv "$core_pin" -r requirements.txt pytest==9.2.0 || return 1
  # ansible-test bootstraps pip into its venvs with a script from a host CI cannot reach;
  # tests/galaxy/get_pip.py does the same offline. Its HOME (venv cache, pip config) is ours.
  local home=$PWD/.cache/ansible-test-home
  mkdir -p "$home/.ansible/test/cache" "$home/.config/pip"
  cp tests/galaxy/get_pip.py "$home/.ansible/test/cache/get_pip_24_2.py"
  { echo "[global]"
    [[ -n ${PIP_CERT:-} ]] && echo "cert = $PIP_CERT"
    [[ -n ${PIP_INDEX_URL:-} ]] && echo "index-url = $PIP_INDEX_URL"
    [[ -n ${PIP_FIND_LINKS:-} ]] && echo "find-links = $PIP_FIND_LINKS"
  } > "$home/.config/pip/pip.conf"
  (cd "$tree" && HOME=$home ../../../../../.cache/sanity-venv/bin/ansible-test sanity --local --requirements \
    --python 3.11 --color no) || rc=1
  # ansible-test units runs without our environment: the tests find the pinned upstream files
  # at <repo>/../shared/upstream, so that path must exist beside the copy too.
  mkdir -p "$out/ansible_collections/researchops/shared" &&
    ln -sfn "$MLOPS_UPSTREAM_DIR" "$out/ansible_collections/researchops/shared/upstream"
  (cd "$tree" && HOME=$home ../../../../../.cache/sanity-venv/bin/ansible-test units --local --requirements --python 3.11 \
    --color no) || rc=1
  rm -rf "$out/ansible_collections/researchops/shared"

  echo "--- antsibull-docs lint-collection-docs"
  # It copies the collection and its dependencies (found with ansible-galaxy collection
  # list) git-aware: dependencies must lie outside any git checkout to be copied whole.
  local docdeps
  docdeps=$(mktemp -d)
  for c in kubernetes/core ansible/posix ansible/utils; do
    mkdir -p "$docdeps/ansible_collections/${c%/*}" && cp -r "$deps/$c" "$docdeps/ansible_collections/$c"
  done
  ANSIBLE_COLLECTIONS_PATH=$docdeps antsibull-docs lint-collection-docs --plugin-docs "$tree" || rc=1
  rm -rf "$docdeps"

  echo "--- antsibull-changelog: fragments, and the release changelog they generate"
  antsibull-changelog lint || rc=1
  antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml || rc=1
  local version
  version=$(sed -n 's/^version: *//p' galaxy.yml)
  (cd "$tree" && ANSIBLE_COLLECTIONS_PATH=$out antsibull-changelog release --version "$version" >/dev/null &&
    antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml &&
    grep -q "^v$version" CHANGELOG.rst) || { echo "antsibull-changelog release failed"; rc=1; }

  echo "--- the installed collection renders what the checkout renders"
  local tmp
  tmp=$(mktemp -d)
  # --no-deps: the dependencies come from the `ansible` package (requirements.txt).
  (cd "$tmp" && env -u ANSIBLE_CONFIG ansible-galaxy collection install --offline --no-deps --force \
    -p "$tmp/collections" "${tarball[0]}" >/dev/null) || rc=1
  # The copy keeps the layout its group_vars rely on (the example pipeline at ../../examples).
  mkdir -p "$tmp/inventories" "$tmp/examples" && cp -r inventories/local "$tmp/inventories/local" &&
    cp -r examples/mnist "$tmp/examples/mnist"
  ansible-playbook site.yml -i inventories/local -e mlops_render_dir="$out/render-checkout" >"$out/render-checkout.log" 2>&1 ||
    { tail -20 "$out/render-checkout.log"; rc=1; }
  (cd "$tmp" && env -u ANSIBLE_CONFIG ANSIBLE_COLLECTIONS_PATH="$tmp/collections" \
    ansible-playbook researchops.mlops.site -i inventories/local -e mlops_render_dir="$tmp/render" >"$out/render-installed.log" 2>&1) ||
    { tail -20 "$out/render-installed.log"; rc=1; }
  diff -r "$out/render-checkout" "$tmp/render" >"$out/render.diff" || { head -40 "$out/render.diff"; rc=1; }
  [[ -n $(find "$tmp/render" -name '*.yaml' -print -quit 2>/dev/null) ]] || { echo "installed render is empty"; rc=1; }
  rm -rf "$tmp"
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
    ruff | pytest | cluster | lint | build | syntax | galaxy | molecule) run_layer "$layer" "layer_$layer" ;;
    *) echo "unknown layer: $layer (ruff pytest cluster lint build syntax galaxy molecule)" >&2; exit 2 ;;
  esac
done

echo
((failed)) && echo "failed layers: ${failed_names[*]}"
echo "test layers: $passed passed, $failed failed"
((failed == 0))
