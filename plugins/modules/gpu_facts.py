#!/usr/bin/python
# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Detect NVIDIA GPUs on a node and return them as the researchops_gpu fact."""

from __future__ import annotations

DOCUMENTATION = r"""
module: gpu_facts
short_description: Detect NVIDIA GPUs, driver, CUDA and container-runtime setup of a node
version_added: 0.1.0
author: ResearchOps developers
description:
  - Returns the C(researchops_gpu) fact describing the NVIDIA GPUs of the host.
  - When C(nvidia-smi) is installed, GPUs come from
    C(nvidia-smi --query-gpu=index,name,uuid,memory.total,driver_version,mig.mode.current,pci.bus_id
    --format=csv,noheader,nounits) and the CUDA version from the C(nvidia-smi) banner.
  - Without C(nvidia-smi), GPUs are counted from PCI sysfs (vendor C(0x10de), class
    C(0x0300) VGA or C(0x0302) 3D controller) and the driver version is read from
    C(/proc/driver/nvidia/version). Product names and memory are then unknown.
  - When C(nvidia-smi) is installed but fails (no driver loaded, driver/library version
    mismatch), GPUs are counted from sysfs, C(driver_version) is null and a warning
    says why. A host without NVIDIA GPUs gives C(count=0); that is never an error.
  - Also reports whether C(nvidia-container-runtime) is installed and registered as a
    runtime in the k3s containerd configuration and/or in Docker's C(daemon.json).
  - Read-only; needs no privileges except to read the k3s containerd configuration
    (a warning says so when it cannot be read).
options:
  nvidia_smi_path:
    description:
      - Path of C(nvidia-smi). By default it is looked up on C(PATH) and in
        C(/usr/bin), C(/usr/local/bin) and C(/usr/local/nvidia/bin).
    type: path
  pci_devices_path:
    description: Folder of PCI devices in sysfs.
    type: path
    default: /sys/bus/pci/devices
  driver_version_path:
    description: File with the loaded NVIDIA kernel module version.
    type: path
    default: /proc/driver/nvidia/version
  nvidia_container_runtime_path:
    description:
      - Path of C(nvidia-container-runtime). By default it is looked up on C(PATH) and
        in C(/usr/bin) and C(/usr/local/bin).
    type: path
  containerd_config_path:
    description: containerd configuration written by k3s.
    type: path
    default: /var/lib/rancher/k3s/agent/etc/containerd/config.toml
  docker_daemon_config_path:
    description: Docker daemon configuration.
    type: path
    default: /etc/docker/daemon.json
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  facts:
    support: full
notes:
  - C(product), C(memory_mib) and C(mig_mode) describe the first GPU, as NVIDIA GPU
    Feature Discovery does for its node labels; C(products) and C(gpus) list all.
"""

EXAMPLES = r"""
- name: Detect NVIDIA GPUs
  researchops.mlops.gpu_facts:

- name: Show what was found
  ansible.builtin.debug:
    msg: "{{ researchops_gpu.count }} x {{ researchops_gpu.product }} (driver {{ researchops_gpu.driver_version }})"

- name: Use an nvidia-smi outside PATH
  researchops.mlops.gpu_facts:
    nvidia_smi_path: /usr/local/nvidia/bin/nvidia-smi
"""

RETURN = r"""
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: dict
  contains:
    researchops_gpu:
      description: NVIDIA GPUs of the host.
      returned: always
      type: dict
      contains:
        count:
          description: Number of NVIDIA GPUs (0 when none).
          type: int
          sample: 8
        source:
          description: Where the GPU list came from.
          type: str
          choices: [nvidia-smi, sysfs, none]
          sample: nvidia-smi
        product:
          description: Name of the first GPU as nvidia-smi prints it; null from sysfs or without GPU.
          type: str
          sample: NVIDIA H100 80GB HBM3
        products:
          description: Distinct GPU names, sorted.
          type: list
          elements: str
          sample: [NVIDIA H100 80GB HBM3]
        memory_mib:
          description: Memory of the first GPU in MiB; null when unknown.
          type: int
          sample: 81559
        memory_total_mib:
          description: Memory of all GPUs in MiB; null when unknown.
          type: int
          sample: 652472
        driver_version:
          description: NVIDIA driver version; null when nvidia-smi fails or no driver is loaded.
          type: str
          sample: 550.90.07
        kernel_module_version:
          description: Version of the loaded nvidia kernel module (/proc/driver/nvidia/version); null when not loaded.
          type: str
          sample: 550.90.07
        cuda_version:
          description: Highest CUDA version the driver supports (nvidia-smi banner); null when unknown.
          type: str
          sample: "12.4"
        mig_mode:
          description: MIG mode of the first GPU (Enabled or Disabled); null for GPUs without MIG or when unknown.
          type: str
          sample: Disabled
        gpus:
          description: One entry per GPU with index, name, uuid, memory_mib, mig_mode, pci_bus_id, device_id.
          type: list
          elements: dict
        nvidia_smi_error:
          description: Why nvidia-smi could not be used; null when it worked or is not installed.
          type: str
          sample: "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
        runtime:
          description: Container runtime integration found on the host.
          type: dict
          contains:
            nvidia_container_runtime:
              description: Path of nvidia-container-runtime; null when not installed.
              type: str
            containerd:
              description: Whether the k3s containerd configuration declares an C(nvidia) runtime.
              type: bool
            docker:
              description: Whether Docker's daemon.json declares C(runtimes.nvidia).
              type: bool
        runtime_configured:
          description: nvidia-container-runtime is installed and containerd or Docker is configured for it.
          type: bool
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.researchops.mlops.plugins.module_utils import gpu as gpulib

NVIDIA_SMI_DIRS = ["/usr/bin", "/usr/local/bin", "/usr/local/nvidia/bin"]
RUNTIME_DIRS = ["/usr/bin", "/usr/local/bin"]


def _first_line(*texts):
    for text in texts:
        for line in (text or "").splitlines():
            if line.strip():
                return line.strip()
    return ""


def _executable(path):
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _read_config(module, path, what):
    try:
        return gpulib.read_text(path)
    except PermissionError:
        module.warn(f"gpu_facts: cannot read {what} {path} (permission denied); run with become to check it")
        return None


def detect_with_nvidia_smi(module, nvidia_smi):
    """(gpus, cuda_version, error); gpus is None when nvidia-smi could not be used."""
    rc, out, err = module.run_command([nvidia_smi] + gpulib.QUERY_ARGS)
    if rc != 0:
        return None, None, f"{_first_line(out, err) or 'no output'} (rc={rc})"
    try:
        gpus = gpulib.parse_query_csv(out)
    except gpulib.GpuParseError as e:
        return None, None, str(e)
    rc, banner, dummy = module.run_command([nvidia_smi])
    return gpus, gpulib.parse_cuda_version(banner) if rc == 0 else None, None


def detect(module):
    params = module.params
    nvidia_smi = params["nvidia_smi_path"] or module.get_bin_path("nvidia-smi", opt_dirs=NVIDIA_SMI_DIRS)
    if params["nvidia_smi_path"] and not _executable(params["nvidia_smi_path"]):
        module.fail_json(msg=f"gpu_facts: nvidia_smi_path {params['nvidia_smi_path']} is not an executable file")
    kernel_module_version = gpulib.parse_proc_driver_version(
        _read_config(module, params["driver_version_path"], "NVIDIA driver version file")
    )
    sysfs_gpus = gpulib.scan_sysfs(params["pci_devices_path"])

    gpus, cuda_version, error = (None, None, None)
    if nvidia_smi:
        gpus, cuda_version, error = detect_with_nvidia_smi(module, nvidia_smi)

    if gpus is not None:
        driver = next((g["driver_version"] for g in gpus if g["driver_version"]), kernel_module_version)
        fact = gpulib.summarize(gpus, "nvidia-smi", driver, cuda_version)
        if len(sysfs_gpus) > len(gpus):
            module.warn(
                f"gpu_facts: {len(sysfs_gpus)} NVIDIA GPUs on the PCI bus but nvidia-smi reports {len(gpus)}; "
                "check `nvidia-smi -q` and the kernel log for GPUs that fell off the bus"
            )
    else:
        # nvidia-smi installed but failing: its driver is not usable, so no driver version.
        driver = None if nvidia_smi else kernel_module_version
        fact = gpulib.summarize(sysfs_gpus, "sysfs", driver, None)
        if error and sysfs_gpus:
            module.warn(
                f"gpu_facts: nvidia-smi failed ({error}); counted {len(sysfs_gpus)} NVIDIA GPUs from sysfs, "
                "driver_version is unknown. Install or reload the NVIDIA driver (a reboot after a driver "
                "upgrade clears a driver/library version mismatch)."
            )

    runtime_bin = params["nvidia_container_runtime_path"] or module.get_bin_path(
        "nvidia-container-runtime", opt_dirs=RUNTIME_DIRS
    )
    if runtime_bin and not _executable(runtime_bin):
        runtime_bin = None
    containerd = gpulib.containerd_has_nvidia_runtime(
        _read_config(module, params["containerd_config_path"], "containerd configuration")
    )
    daemon_json = _read_config(module, params["docker_daemon_config_path"], "Docker daemon configuration")
    try:
        docker = gpulib.docker_has_nvidia_runtime(daemon_json)
    except ValueError as e:
        module.warn(
            f"gpu_facts: {params['docker_daemon_config_path']} is not valid JSON ({e}); Docker runtimes not checked"
        )
        docker = False

    fact.update(
        kernel_module_version=kernel_module_version,
        nvidia_smi_error=error,
        runtime={"nvidia_container_runtime": runtime_bin, "containerd": containerd, "docker": docker},
        runtime_configured=bool(runtime_bin) and (containerd or docker),
    )
    return fact


def main():
    module = AnsibleModule(
        argument_spec=dict(
            nvidia_smi_path=dict(type="path"),
            pci_devices_path=dict(type="path", default="/sys/bus/pci/devices"),
            driver_version_path=dict(type="path", default="/proc/driver/nvidia/version"),
            nvidia_container_runtime_path=dict(type="path"),
            containerd_config_path=dict(type="path", default="/var/lib/rancher/k3s/agent/etc/containerd/config.toml"),
            docker_daemon_config_path=dict(type="path", default="/etc/docker/daemon.json"),
        ),
        supports_check_mode=True,
    )
    module.exit_json(changed=False, ansible_facts={"researchops_gpu": detect(module)})


if __name__ == "__main__":
    main()
