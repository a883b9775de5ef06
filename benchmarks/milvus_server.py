"""A real Milvus server (the PyPI package ``milvus``: standalone with embedded etcd), for tests and benchmarks.

``MilvusServer.start`` runs its ``milvus-server`` launcher in a process group of its own, with a
temporary data folder and free ports, and waits (bounded) until a client call succeeds. The launcher
finds free ports for Milvus' own components, but its embedded etcd would listen on 2379 and 2380
whatever the launcher says: an etcd config of our own (``ETCD_CONFIG_PATH``) moves those too, so
two sessions on one machine each get their own server.
``stop`` sends the launcher SIGINT, on which it stops its ``milvus run standalone`` child by PID
and reaps it; whatever is still alive in the group after that is killed. Nothing is left running.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pymilvus.exceptions import MilvusException

from assetlens.engine.store import milvus_client

START_TIMEOUT_S = 240.0
ROOT_TOKEN = "root:Milvus"  # the default superuser of a server with authorization enabled
STOP_TIMEOUT_S = 30.0
# The launcher's own command line (``milvus-server``), run by this interpreter.
LAUNCHER = "import sys; from milvus import main; sys.argv[0] = 'milvus-server'; main()"


class MilvusServerError(RuntimeError):
    """The test server could not be started."""


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports on 127.0.0.1 that nothing listens on right now."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(n)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def _etcd_config(data_dir: Path, client_port: int, peer_port: int) -> Path:
    client, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    path = data_dir / "embedEtcd.yaml"
    path.write_text(
        "name: default\n"
        f"data-dir: {data_dir / 'data' / 'etcd.data'}\n"
        f"listen-client-urls: {client}\nadvertise-client-urls: {client}\n"
        f"listen-peer-urls: {peer}\ninitial-advertise-peer-urls: {peer}\n"
        f"initial-cluster: default={peer}\ninitial-cluster-state: new\n"
    )
    return path


def _group_alive(pgid: int) -> list[int]:
    """PIDs of live (not zombie) processes in process group ``pgid``."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            alive.append(int(entry.name))
    return alive


def _wait_gone(pgid: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if not _group_alive(pgid):
            return True
        time.sleep(0.2)
    return not _group_alive(pgid)


@dataclass
class MilvusServer:
    data_dir: Path
    port: int
    process: subprocess.Popen[bytes]
    token: str = ""

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.data_dir / "launcher.log"

    def log_tail(self, lines: int = 20) -> str:
        texts = []
        for path in (self.log, self.data_dir / "logs" / "milvus-stderr.log"):
            if path.is_file():
                texts.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(texts)

    @classmethod
    def start(cls, data_dir: Path, *, auth: bool = False, timeout: float = START_TIMEOUT_S) -> MilvusServer:
        """Start a server with its data in ``data_dir``; raise ``MilvusServerError`` if it is not up in time.

        ``auth``: authorization enabled, so every client needs a token (``ROOT_TOKEN`` works).
        """
        if importlib.util.find_spec("milvus") is None:
            raise MilvusServerError("The Milvus server package (milvus) is missing; install the test extra.")
        data_dir.mkdir(parents=True, exist_ok=True)
        port, etcd_port, peer_port = free_ports(3)
        env = {**os.environ, "ETCD_CONFIG_PATH": str(_etcd_config(data_dir, etcd_port, peer_port))}
        argv = [
            sys.executable,
            "-c",
            LAUNCHER,
            "--data",
            str(data_dir),
            "--proxy-port",
            str(port),
            "--etcd-port",
            str(etcd_port),
        ] + (["--authorization-enabled", "true"] if auth else [])
        with open(data_dir / "launcher.log", "wb") as log:
            process = subprocess.Popen(
                argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        server = cls(data_dir, port, process, ROOT_TOKEN if auth else "")
        try:
            server._wait_ready(time.monotonic() + timeout)
        except BaseException:
            server.stop(remove_data=False)
            raise
        return server

    def _wait_ready(self, deadline: float) -> None:
        """Poll the port, then a client call, until the server answers or the deadline passes."""
        quiet = logging.getLogger("pymilvus")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL + 1)
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise MilvusServerError(
                        f"The Milvus server exited with code {self.process.returncode} while starting:\n"
                        f"{self.log_tail()}"
                    )
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        pass
                    client = milvus_client(self.uri, self.token, timeout=5)
                    try:
                        client.list_collections()
                        return
                    finally:
                        client.close()
                except (OSError, MilvusException):
                    time.sleep(0.5)
        finally:
            quiet.setLevel(level)
        raise MilvusServerError(
            f"The Milvus server did not answer on {self.uri} within the deadline; log tail:\n{self.log_tail()}"
        )

    def stop(self, remove_data: bool = True) -> None:
        """Stop the launcher and its server; kill the process group if they do not go in time."""
        pgid = self.process.pid  # start_new_session: the launcher leads its own group
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # the launcher stops its child on SIGINT
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_TIMEOUT_S)
        if not _wait_gone(pgid, time.monotonic() + STOP_TIMEOUT_S):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT_S)
        if not _wait_gone(pgid, time.monotonic() + STOP_TIMEOUT_S):
            raise MilvusServerError(f"Processes {_group_alive(pgid)} of the Milvus server would not stop.")
        if remove_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def drop_all_collections(uri: str) -> None:
    """Give a test a server with no collections (the session's server is shared)."""
    client = milvus_client(uri, timeout=30)
    try:
        for name in client.list_collections():
            client.drop_collection(name)
    finally:
        client.close()


def infix_like(uri: str) -> bool:
    """Whether the backend matches ``like "%text%"``: Milvus Lite does; servers do from 2.4 on."""
    if "://" not in uri:
        return True
    client = milvus_client(uri)
    try:
        major, minor = (int(part) for part in client.get_server_version().lstrip("v").split(".")[:2])
    finally:
        client.close()
    return (major, minor) >= (2, 4)
