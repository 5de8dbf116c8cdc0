"""playbooks/node_remove.yml refuses, before touching any node or the API, what would
break the cluster: the first server (it ran --cluster-init; k3s docs "High Availability
Embedded etcd": the others join through it), a host that is not a cluster node, and a
run without the typed confirmation. Runs against the example lab inventory, whose
addresses (192.0.2.0/24, TEST-NET-1) cannot be reached: a refusal must come first.
"""
import pytest
from ops_helpers import REPO, run_playbook

pytestmark = pytest.mark.slow
LAB = str(REPO / "inventories" / "lab")


REFUSED = [("pi-1", "remove-nodes"), ("storage-1", "remove-nodes"), ("pi-3", ""), ("", "remove-nodes")]


@pytest.mark.parametrize(("hosts", "confirm"), REFUSED)
def test_refused_before_anything_runs(tmp_path, hosts, confirm):
    proc = run_playbook("playbooks/node_remove.yml", tmp_path, inventory=LAB, check=False,
                        extra={"node_remove_hosts": hosts, "node_remove_confirm": confirm})
    assert proc.returncode != 0
    assert "Give -e node_remove_hosts=<nodes of k3s_cluster>" in proc.stdout
    assert "Drain the nodes" not in proc.stdout
