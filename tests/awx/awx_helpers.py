"""Constants shared by the AWX tests."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
AWX_MODULES = ["organization", "credential_type", "credential", "execution_environment", "project",
               "inventory", "inventory_source", "inventory_source_update", "job_template",
               "workflow_job_template"]
# What an operator passes from the vault (fake values: the stand-ins never send them).
CREDENTIALS = [
    {"name": "ResearchOps kubeconfig", "credential_type": "ResearchOps kubeconfig",
     "inputs": {"kubeconfig": "apiVersion: v1\nkind: Config\n"}},
    {"name": "ResearchOps backup key", "credential_type": "ResearchOps backup key",
     "inputs": {"passphrase": "correct horse battery staple"}},
    # AWX's built-in type; its injector (awx/main/models/credential/injectors.py, aws())
    # sets AWS_ACCESS_KEY_ID from `username` and AWS_SECRET_ACCESS_KEY from `password`.
    {"name": "ResearchOps S3", "credential_type": "Amazon Web Services",
     "inputs": {"username": "GK0123456789abcdef01234567", "password": "s3-secret-never-in-extra-vars"}},
]
