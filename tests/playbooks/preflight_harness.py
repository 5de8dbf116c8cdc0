"""Run the preflight controller checks in-process against an inventory folder, the way
the action plugin does inside ansible-playbook (same HostVars, same templar, same role
files), without starting a playbook per inventory."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def load_options():
    from ansible.parsing.dataloader import DataLoader
    loader = DataLoader()
    defaults = loader.load_from_file(str(REPO_ROOT / "roles/preflight/defaults/main.yml"))
    internal = loader.load_from_file(str(REPO_ROOT / "roles/preflight/vars/main.yml"))
    return {
        "supported_os": defaults["preflight_supported_os"],
        "supported_arch": defaults["preflight_supported_arch"],
        "k3s_token_required": defaults["preflight_k3s_token_required"],
        "known_secrets": internal["__preflight_known_secrets"] + defaults["preflight_known_secrets_extra"],
        "removed_variables": defaults["preflight_removed_variables"],
        "max_time_skew": defaults["preflight_max_time_skew"],
        "min_free_gib": defaults["preflight_min_free_gib"],
    }


def context(inventory: str | os.PathLike, extra_vars: dict | None = None):
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    from ansible.vars.hostvars import HostVars
    from ansible.vars.manager import VariableManager

    from ansible_collections.researchops.mlops.plugins.plugin_utils import preflight

    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[str(inventory)])
    variables = VariableManager(loader=loader, inventory=inventory)
    if extra_vars:
        variables._extra_vars = dict(extra_vars)
    hostvars = HostVars(inventory, variables, loader)
    controller = variables.get_vars(host=inventory.localhost or inventory.get_host("localhost"), include_hostvars=False)
    groups = {name: [h.name for h in group.get_hosts()] for name, group in inventory.groups.items()}
    templar = Templar(loader=loader, variables=controller)
    return preflight.Context(loader, templar, hostvars, groups, controller, str(REPO_ROOT / "roles"), load_options())


def controller_problems(inventory, extra_vars=None):
    from ansible_collections.researchops.mlops.plugins.filter.pipeline import pipeline_objects, pipeline_spec
    from ansible_collections.researchops.mlops.plugins.plugin_utils import preflight
    ctx = context(inventory, extra_vars)
    return preflight.check_controller(ctx, pipeline_spec, pipeline_objects)
