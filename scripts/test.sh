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
  mkdir -p build/layers
  if "$@" 2>&1 | tee "build/layers/$name.log"; then
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

# Each step of the galaxy layer logs to build/galaxy/<step>.log; a failed step prints the
# log's last lines, and the layer ends with the list of failed steps (CI shows only the
# tail of its output, so the reason must be at the end).
galaxy_step() { # galaxy_step NAME COMMAND...
  local name=$1 log=$PWD/build/galaxy/$1.log start=$SECONDS
  shift
  echo "--- galaxy: $name"
  if "$@" > "$log" 2>&1; then
    echo "    ok ($((SECONDS - start))s, log: build/galaxy/$name.log)"
  else
    echo "    FAILED ($((SECONDS - start))s), last lines of build/galaxy/$name.log:"
    tail -n 60 "$log" | sed 's/^/    | /'
    galaxy_failed+=("$name")
  fi
}

galaxy_importer() {
  local runner=$PWD/tests/galaxy/run_importer.py
  # The importer runs ansible-doc and ansible-lint on the unpacked artifact; the collections
  # it depends on come from the `ansible` package, as they would be installed beside it.
  galaxy_venv .cache/galaxy-venv galaxy-importer==0.4.44 "$ansible_pin" "$core_pin" || return 1
  # tests/galaxy/run_importer.py: the importer itself, without its 180 s deadline on
  # ansible-lint (a busy 2-core machine exceeds it); the lint's time is printed.
  (cd "$out" && PATH=$PWD/../../.cache/galaxy-venv/bin:$PATH python "$runner" "$tarball" \
    > importer.log 2>&1) || { cat "$out/importer.log"; return 1; }
  grep '^run_importer:' "$out/importer.log"
  # Every ERROR/WARNING fails the step but one notice: the importer announces any ignore file
  # ("Ignore files skip ansible-test sanity tests"). Ours holds only entries with a documented
  # reason (Apache-2.0 headers validate-modules cannot read, test stand-ins' interpreter lines).
  ! grep -E '^(ERROR|WARNING)' "$out/importer.log" |
    grep -v '^WARNING: Ignore files skip ansible-test sanity tests, found ignore-' ||
    { echo "galaxy-importer reported the lines above"; return 1; }
  grep -q 'Importer processing completed successfully' "$out/importer.log" || { cat "$out/importer.log"; return 1; }
}

galaxy_tree() {
  mkdir -p "$tree" && git ls-files -co --exclude-standard -z | grep -zv '^collections/' |
    xargs -0 cp --parents -t "$tree" || return 1
  (cd "$tree" && git init -q . && git add -A) || return 1
  # Dependencies beside it, from the `ansible` package (no Galaxy access needed).
  local c
  for c in kubernetes/core community/general community/crypto ansible/posix ansible/utils amazon/aws; do
    mkdir -p "$out/ansible_collections/${c%/*}" && ln -sfn "$deps/$c" "$out/ansible_collections/$c" || return 1
  done
  galaxy_venv .cache/sanity-venv "$core_pin" -r requirements.txt pytest==9.2.0 || return 1
  # ansible-test bootstraps pip into its venvs with a script from a host CI cannot reach;
  # tests/galaxy/get_pip.py does the same offline. Its HOME (venv cache, pip config) is ours.
  mkdir -p "$home/.ansible/test/cache" "$home/.config/pip" &&
    cp tests/galaxy/get_pip.py "$home/.ansible/test/cache/get_pip_24_2.py" || return 1
  { echo "[global]"
    [[ -n ${PIP_CERT:-} ]] && echo "cert = $PIP_CERT"
    [[ -n ${PIP_INDEX_URL:-} ]] && echo "index-url = $PIP_INDEX_URL"
    [[ -n ${PIP_FIND_LINKS:-} ]] && echo "find-links = $PIP_FIND_LINKS"
    true
  } > "$home/.config/pip/pip.conf"
}

galaxy_sanity() {
  (cd "$tree" && HOME=$home ../../../../../.cache/sanity-venv/bin/ansible-test sanity --local --requirements \
    --python 3.11 --color no)
}

galaxy_units() {
  # ansible-test units runs without our environment: the tests find the pinned upstream files
  # at <repo>/../shared/upstream, so that path must exist beside the copy too.
  local rc=0
  mkdir -p "$out/ansible_collections/researchops/shared" &&
    ln -sfn "$MLOPS_UPSTREAM_DIR" "$out/ansible_collections/researchops/shared/upstream" || return 1
  (cd "$tree" && HOME=$home ../../../../../.cache/sanity-venv/bin/ansible-test units --local --requirements --python 3.11 \
    --color no) || rc=1
  rm -rf "$out/ansible_collections/researchops/shared"
  return $rc
}

galaxy_docs() {
  # antsibull-docs copies the collection and its dependencies (found with ansible-galaxy
  # collection list) git-aware: a dependency inside a git checkout is copied as the files git
  # tracks. The `ansible` package's collections sit in .venv, git-ignored inside this
  # checkout, so they would be copied empty and their doc fragments "unknown" (CI at
  # a474e86). Git must not look above them: they are then copied whole.
  GIT_CEILING_DIRECTORIES=$deps antsibull-docs lint-collection-docs --plugin-docs "$tree"
}

galaxy_changelog() {
  local version
  version=$(sed -n 's/^version: *//p' galaxy.yml)
  antsibull-changelog lint && antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml &&
    (cd "$tree" && ANSIBLE_COLLECTIONS_PATH=$out antsibull-changelog release --version "$version" &&
      antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml &&
      grep -q "^v$version" CHANGELOG.rst)
}

galaxy_installed_render() {
  local tmp rc=0
  tmp=$(mktemp -d)
  # --no-deps: the dependencies come from the `ansible` package (requirements.txt).
  (cd "$tmp" && env -u ANSIBLE_CONFIG ansible-galaxy collection install --offline --no-deps --force \
    -p "$tmp/collections" "$tarball") || rc=1
  # The copy keeps the layout its group_vars rely on (the example pipeline at ../../examples).
  mkdir -p "$tmp/inventories" "$tmp/examples" && cp -r inventories/local "$tmp/inventories/local" &&
    cp -r examples/mnist "$tmp/examples/mnist" || rc=1
  ansible-playbook site.yml -i inventories/local -e mlops_render_dir="$out/render-checkout" >"$out/render-checkout.log" 2>&1 ||
    { echo "render from the checkout failed:"; tail -20 "$out/render-checkout.log"; rc=1; }
  (cd "$tmp" && env -u ANSIBLE_CONFIG ANSIBLE_COLLECTIONS_PATH="$tmp/collections" \
    ansible-playbook researchops.mlops.site -i inventories/local -e mlops_render_dir="$tmp/render" >"$out/render-installed.log" 2>&1) ||
    { echo "render from the installed collection failed:"; tail -20 "$out/render-installed.log"; rc=1; }
  diff -r "$out/render-checkout" "$tmp/render" >"$out/render.diff" || { head -40 "$out/render.diff"; rc=1; }
  [[ -n $(find "$tmp/render" -name '*.yaml' -print -quit 2>/dev/null) ]] || { echo "installed render is empty"; rc=1; }
  rm -rf "$tmp"
  return $rc
}

layer_galaxy() {
  local out=$PWD/build/galaxy ansible_pin core_pin tarball tree deps home=$PWD/.cache/ansible-test-home
  local galaxy_failed=()
  ansible_pin=$(grep -E '^ansible==' requirements.txt)
  core_pin=$(grep -E '^ansible-core==' requirements.txt)
  rm -rf "$out" && mkdir -p "$out" &&
    ansible-galaxy collection build --force --output-path "$out" . >/dev/null || return 1
  tarball=$(ls "$out"/researchops-mlops-*.tar.gz)
  tree=$out/ansible_collections/researchops/mlops
  deps=$(python -c 'import ansible_collections as a; print(list(a.__path__)[0])')
  galaxy_step galaxy-importer galaxy_importer
  galaxy_step sanity-setup galaxy_tree
  galaxy_step ansible-test-sanity galaxy_sanity
  galaxy_step ansible-test-units galaxy_units
  galaxy_step antsibull-docs galaxy_docs
  galaxy_step antsibull-changelog galaxy_changelog
  galaxy_step installed-render galaxy_installed_render
  ((${#galaxy_failed[@]} == 0)) || { echo "galaxy: failed steps: ${galaxy_failed[*]}"; return 1; }
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
# CI shows only the tail of this output: repeat each failed layer's last lines here.
for layer in "${failed_names[@]}"; do
  echo "--- last lines of failed layer $layer (whole output: build/layers/$layer.log)"
  tail -n 60 "build/layers/$layer.log"
done
((failed)) && echo "failed layers: ${failed_names[*]}"
echo "test layers: $passed passed, $failed failed"
((failed == 0))
