"""A throw-away Kubernetes control plane for the `cluster` test layer.

Binaries come from $KUBEBUILDER_ASSETS (the envtest convention: a directory with `etcd`,
`kube-apiserver`, `kubectl`, and optionally `kube-controller-manager`) or from the
kube-harness tarball ($MLOPS_KUBE_HARNESS, default ../shared/kube-harness/kube-harness.tar.xz)
unpacked into a temporary directory. etcd, kube-apiserver and (when its binary exists)
kube-controller-manager run on 127.0.0.1 on ports picked free at start; a fresh PKI is
made with openssl. Everything lives under one temporary directory, wiped by stop().
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TARBALL = REPO_ROOT.parent / "shared" / "kube-harness" / "kube-harness.tar.xz"
REQUIRED = ("etcd", "kube-apiserver", "kubectl")


class NoBinaries(Exception):
    """No control-plane binaries: the layer is skipped with this message."""


def find_binaries(workdir):
    """Directory holding etcd, kube-apiserver and kubectl; unpacks the harness if needed."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        missing = [name for name in REQUIRED if not os.access(Path(assets) / name, os.X_OK)]
        if missing:
            raise NoBinaries(f"KUBEBUILDER_ASSETS={assets} lacks {', '.join(missing)}")
        return Path(assets)
    tarball = Path(os.environ.get("MLOPS_KUBE_HARNESS", DEFAULT_TARBALL))
    if not tarball.is_file():
        raise NoBinaries(
            f"no Kubernetes control plane binaries: KUBEBUILDER_ASSETS is not set and {tarball} does not exist "
            "(get them with `setup-envtest use -p path` and export KUBEBUILDER_ASSETS, see docs/sink.md)"
        )
    with tarfile.open(tarball) as archive:
        archive.extractall(workdir, filter="data")
    return Path(workdir) / "kube-harness" / "bin"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


class ControlPlane:
    def __init__(self, root, binaries):
        self.root = Path(root)
        self.bin = Path(binaries)
        self.pki = self.root / "pki"
        self.logs = self.root / "logs"
        self.kubeconfig = self.root / "kubeconfig"
        self.ports = {name: free_port() for name in ("etcd", "peer", "api", "kcm")}
        self.procs = {}
        self.server = f"https://127.0.0.1:{self.ports['api']}"

    # ------------------------------------------------------------------ setup
    def _cert(self, name, subject, ext):
        key, csr, crt, extfile = (self.pki / f"{name}.{s}" for s in ("key", "csr", "crt", "ext"))
        _openssl("genrsa", "-out", str(key), "2048")
        _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
        extfile.write_text(ext)
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(self.pki / "ca.crt"), "-CAkey", str(self.pki / "ca.key"),
                 "-CAcreateserial", "-days", "2", "-sha256", "-extfile", str(extfile), "-out", str(crt))

    def _make_pki(self):
        self.pki.mkdir(parents=True, mode=0o700)
        _openssl("genrsa", "-out", str(self.pki / "ca.key"), "2048")
        _openssl("req", "-x509", "-new", "-key", str(self.pki / "ca.key"), "-subj", "/CN=cluster-layer-ca", "-days", "2",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
                 "-out", str(self.pki / "ca.crt"))
        usage = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        self._cert("apiserver", "/CN=kube-apiserver", usage + "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
        self._cert("admin", "/O=system:masters/CN=kubernetes-admin", usage + "extendedKeyUsage=clientAuth\n")
        self._cert("kcm", "/CN=system:kube-controller-manager", usage + "extendedKeyUsage=clientAuth\n")
        _openssl("genrsa", "-out", str(self.pki / "sa.key"), "2048")
        _openssl("rsa", "-in", str(self.pki / "sa.key"), "-pubout", "-out", str(self.pki / "sa.pub"))

    def _write_kubeconfig(self, path, user, cert):

        def b64(name):
            return base64.b64encode((self.pki / name).read_bytes()).decode()

        path.write_text(
            f"apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {self.server}\n"
            f"    certificate-authority-data: {b64('ca.crt')}\nusers:\n- name: {user}\n  user:\n"
            f"    client-certificate-data: {b64(cert + '.crt')}\n    client-key-data: {b64(cert + '.key')}\n"
            f"contexts:\n- name: {user}\n  context:\n    cluster: test\n    user: {user}\ncurrent-context: {user}\n"
        )
        path.chmod(0o600)

    def _spawn(self, name, args):
        log = open(self.logs / f"{name}.log", "a", encoding="utf-8")  # closed by stop_process
        self.procs[name] = (subprocess.Popen([str(self.bin / name), *args], stdout=log, stderr=subprocess.STDOUT, start_new_session=True), log)

    def _wait(self, name, check, timeout=180):
        deadline = time.monotonic() + timeout
        while not check():
            proc = self.procs[name][0]
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} did not become ready (exit {proc.poll()}):\n{tail}")
            time.sleep(0.5)

    def kubectl(self, *args, check=True, input=None, timeout=120):
        result = subprocess.run([str(self.bin / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
                                capture_output=True, text=True, input=input, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def _ready(self):
        return self.kubectl("get", "--raw", "/readyz", "--request-timeout=5s", check=False, timeout=20).returncode == 0

    def start(self):
        self.logs.mkdir(parents=True)
        self._make_pki()
        self._write_kubeconfig(self.kubeconfig, "admin", "admin")
        self._write_kubeconfig(self.root / "kcm.kubeconfig", "kcm", "kcm")
        peer = f"http://127.0.0.1:{self.ports['peer']}"
        client = f"http://127.0.0.1:{self.ports['etcd']}"
        self._spawn("etcd", ["--name=test", f"--data-dir={self.root / 'etcd'}", f"--listen-client-urls={client}",
                             f"--advertise-client-urls={client}", f"--listen-peer-urls={peer}",
                             f"--initial-advertise-peer-urls={peer}", f"--initial-cluster=test={peer}",
                             "--unsafe-no-fsync", "--log-level=warn"])
        self.start_apiserver()
        if (self.bin / "kube-controller-manager").is_file():
            kcm = str(self.root / "kcm.kubeconfig")
            self._spawn("kube-controller-manager", [
                f"--kubeconfig={kcm}", f"--authentication-kubeconfig={kcm}", f"--authorization-kubeconfig={kcm}",
                "--bind-address=127.0.0.1", f"--secure-port={self.ports['kcm']}", f"--cert-dir={self.pki / 'kcm'}",
                "--leader-elect=false", "--use-service-account-credentials=true",
                "--controllers=*,-node-lifecycle-controller", f"--service-account-private-key-file={self.pki / 'sa.key'}",
                f"--root-ca-file={self.pki / 'ca.crt'}", "--service-cluster-ip-range=10.96.0.0/16",
            ])
        return self

    def start_apiserver(self):
        p = self.pki
        self._spawn("kube-apiserver", [
            "--bind-address=127.0.0.1", f"--secure-port={self.ports['api']}", "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none", f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
            f"--client-ca-file={p / 'ca.crt'}", f"--tls-cert-file={p / 'apiserver.crt'}", f"--tls-private-key-file={p / 'apiserver.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local", f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}", "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.96.0.0/16", "--allow-privileged=true", f"--cert-dir={p / 'apiserver-generated'}",
        ])
        self._wait("kube-apiserver", self._ready)

    def stop_process(self, name):
        proc, log = self.procs.pop(name, (None, None))
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()

    def stop(self):
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            self.stop_process(name)


def start_control_plane(binaries):
    """(ControlPlane, workdir) running the binaries in `binaries` (find_binaries); raises
    NoBinaries when there is no openssl to make its certificates."""
    workdir = tempfile.mkdtemp(prefix="mlops-cluster-")
    try:
        if shutil.which("openssl") is None:
            raise NoBinaries("openssl is needed to make the control plane's certificates")
        plane = ControlPlane(Path(workdir) / "state", binaries)
        try:
            plane.start()
        except BaseException:
            plane.stop()
            raise
        return plane, workdir
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
