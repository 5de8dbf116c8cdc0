"""Offline stand-in for ansible-test's pip bootstrap script (get-pip.py).

ansible-test (``_util/target/setup/requirements.py``, ``bootstrap()``) creates its
sanity virtual environments without pip and runs ``get-pip-<version>.py`` from
https://ci-files.testing.ansible.com, a host CI cannot reach (ansible/ansible#77304).
It runs the script as ``__main__`` with pip-install arguments
(``--disable-pip-version-check pip==24.2 --no-setuptools --no-wheel``). This does the
same with what the interpreter ships: ``ensurepip``, then pip installs the requested
pip version from the configured package index. scripts/test.sh puts it where
ansible-test looks (``~/.ansible/test/cache/get_pip_<version>.py``) when it is absent.
"""

import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
# ensurepip in its own process: in-process it sets PIP_CONFIG_FILE=/dev/null for the
# rest of this process (ensurepip/__init__.py, _run_pip), hiding the index/cert config.
subprocess.run([sys.executable, "-m", "ensurepip", "--upgrade"], check=True)
subprocess.run([sys.executable, "-m", "pip", "install", *args], check=True)
