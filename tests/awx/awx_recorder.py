# Stand-in for an awx.awx module: records the arguments the task would send, answers
# like the module does for an object it found (changed false, id), never talks to AWX.
# The tests then check the recorded arguments against the real module's argument spec.
import json
import os
import sys

from ansible.module_utils.basic import _load_params


def main():
    params = {k: v for k, v in _load_params().items() if not k.startswith("_ansible")}
    with open(os.environ["AWX_RECORDER_FILE"], "a", encoding="utf-8") as out:
        out.write(json.dumps({"module": os.path.basename(__file__)[:-3], "params": params}) + "\n")
    print(json.dumps({"changed": False, "id": 1, "name": params.get("name")}))
    sys.exit(0)


if __name__ == "__main__":
    main()
