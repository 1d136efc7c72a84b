"""A sample SFTP server that serves a local directory as the HRIS vendor's SFTP root.

`SftpSampleServer(root_dir)` makes `root_dir/outbound/hris/x.csv` appear at the remote path
`/outbound/hris/x.csv`, with key authentication only and an ed25519 host key the client pins.

Two backends:

- ``"sshd"``: the real OpenSSH server (`sshd -D -e -f <generated config>`, `internal-sftp`,
  `ChrootDirectory`). Chosen by ``"auto"`` when running as root and `sshd` is installed.
- ``"asyncssh"``: an asyncssh SFTP server on its own event loop in a background thread, chrooted
  to `root_dir`. Chosen by ``"auto"`` otherwise, so the demo also runs without root.

The chroot problem. sshd refuses a `ChrootDirectory` unless every component of its path is owned
by root and writable by nobody else, and temporary directories live under /tmp (mode 1777), so
a pytest `tmp_path` can never be a chroot. The server picks the first strategy that works
(`chroot_strategy` says which):

1. ``"direct"``: `root_dir` itself qualifies (e.g. it lives under /srv) and is the chroot.
2. ``"bind"``: an empty chroot directory is made under a root-owned 0755 base (/run or
   /var/lib, never /tmp), and sshd is started through
   `unshare --mount --propagation private`, whose shell bind-mounts `root_dir` onto it before
   exec'ing sshd. The mount exists only in sshd's private mount namespace, so it disappears with
   sshd, never leaks into the host's mount table, and a crash cannot leave a mount behind for a
   later `rm -rf` to walk into. Files written to `root_dir` at any time are served at once, and
   files the client writes land in `root_dir`. Needs `root_dir` root-owned and not group- or
   world-writable (pytest's tmp dirs are) and CAP_SYS_ADMIN.
3. ``"mirror"``: the chroot is filled with hard links to `root_dir`'s files (a copy across file
   systems). Appends to an existing file show through (same inode); new, replaced or deleted
   files show after `sync()`.

Fault helpers: `drop_connections()` kills in-flight sessions but keeps the listener;
`pause()`/`resume()` make the server accept TCP connections without ever speaking SSH (clients
hang until their banner timeout); `stop()`/`start()` take it down and bring it back on the same
port with the same keys (clients get "connection refused" in between).

CLI: ``python -m turnover_demo.sample_servers.sftp_server --root DIR [--port N] [--state-dir D]``
prints one JSON line (host, port, backend, the `hris_sftp` connection) and serves until
SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HRIS_SFTP_CONN_ID = "hris_sftp"
DEFAULT_REMOTE_DIR = "/outbound/hris"
# Root-owned 0755 places for sshd chroots; /tmp and /var/tmp (1777) never qualify.
CHROOT_BASE_CANDIDATES = ("/run/turnover_signals_sftp", "/var/lib/turnover_signals_sftp")
START_TIMEOUT_SECONDS = 10.0


class SftpServerError(RuntimeError):
    """The sample SFTP server could not be started or controlled."""


def find_sshd() -> str | None:
    """Path of the OpenSSH server binary, or None."""
    return shutil.which("sshd") or next(
        (path for path in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if os.access(path, os.X_OK)), None
    )


def is_chroot_safe(path: str | os.PathLike[str]) -> bool:
    """Whether sshd accepts `path` as ChrootDirectory: every component root-owned, not g/o-writable."""
    current = Path(os.path.realpath(path))
    for component in (current, *current.parents):
        try:
            info = os.stat(component)
        except OSError:
            return False
        if info.st_uid != 0 or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return False
    return True


def free_loopback_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def wait_for_ssh_banner(host: str, port: int, timeout: float = START_TIMEOUT_SECONDS) -> None:
    """Block until `host:port` accepts a connection and sends an SSH identification string."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0) as probe:
                if probe.recv(64).startswith(b"SSH-"):
                    return
        except OSError as exc:
            last_error = exc
        time.sleep(0.05)
    raise SftpServerError(f"no SSH banner on {host}:{port} after {timeout:.0f}s ({last_error})")


def child_pids(pid: int) -> list[int]:
    """Every descendant of `pid`, children before grandchildren (Linux /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    queue = [pid]
    while queue:
        children = parents.get(queue.pop(0), [])
        found.extend(children)
        queue.extend(children)
    return found


def mirror_tree(source: Path, target: Path) -> None:
    """Make `target` hold the same tree as `source`, by hard links where possible.

    Existing links to the same inode are kept, so repeated calls are cheap; entries that vanished
    from `source` are removed from `target`.
    """
    target.mkdir(parents=True, exist_ok=True)
    wanted = {entry.name for entry in os.scandir(source)}
    for entry in os.scandir(target):
        if entry.name not in wanted:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
    for entry in os.scandir(source):
        destination = target / entry.name
        if entry.is_dir(follow_symlinks=False):
            if destination.exists() and not destination.is_dir():
                destination.unlink()
            mirror_tree(Path(entry.path), destination)
            shutil.copystat(entry.path, destination)
            continue
        if destination.is_dir() and not destination.is_symlink():
            shutil.rmtree(destination)
        elif destination.exists() or destination.is_symlink():
            if os.path.samefile(entry.path, destination):
                continue
            destination.unlink()
        try:
            os.link(entry.path, destination, follow_symlinks=False)
        except OSError:
            shutil.copy2(entry.path, destination, follow_symlinks=False)


def generate_ed25519_key(private_key_path: Path, comment: str) -> None:
    """Write an unencrypted OpenSSH ed25519 key pair (`path` and `path.pub`)."""
    ssh_keygen = shutil.which("ssh-keygen")
    if ssh_keygen:
        subprocess.run(
            [ssh_keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(private_key_path)],
            check=True,
            capture_output=True,
        )
    else:
        import asyncssh

        key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
        key.write_private_key(str(private_key_path))
        key.write_public_key(str(private_key_path) + ".pub")
    os.chmod(private_key_path, 0o600)


class SftpSampleServer:
    """An SFTP server serving `root_dir` as `/`, with key auth and a pinned ed25519 host key.

    Use as a context manager, or call `start()` / `stop()`. Keys live in `state_dir` (a new
    temporary directory unless given; kept and reused when given, so the host key is stable
    across runs of the demo).
    """

    def __init__(
        self,
        root_dir: str | os.PathLike[str],
        host: str = "127.0.0.1",
        port: int = 0,
        state_dir: str | os.PathLike[str] | None = None,
        backend: str = "auto",
    ) -> None:
        if backend not in ("auto", "sshd", "asyncssh"):
            raise ValueError(f"backend must be 'auto', 'sshd' or 'asyncssh', not {backend!r}")
        self.root_dir = Path(root_dir).resolve()
        if not self.root_dir.is_dir():
            raise SftpServerError(f"SFTP root {self.root_dir} is not a directory")
        if backend == "auto":
            backend = "sshd" if os.geteuid() == 0 and find_sshd() else "asyncssh"
        if backend == "sshd" and not find_sshd():
            raise SftpServerError("backend 'sshd' requested but no sshd binary was found")
        self.backend = backend
        self.host = host
        self.port = port
        self.username = getpass.getuser()
        self._owns_state_dir = state_dir is None
        self.state_dir = Path(state_dir or tempfile.mkdtemp(prefix="sftp-sample-")).resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.host_key_path = self.state_dir / "ssh_host_ed25519_key"
        self.client_private_key_path = self.state_dir / "client_ed25519_key"
        self.authorized_keys_path = self.state_dir / "authorized_keys"
        self._ensure_keys()
        self.chroot_strategy: str | None = None
        self.chroot_dir: Path | None = None
        self._chroot_base: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        self._paused = False
        self._blackhole: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._acceptor: Any = None
        self._connections: set[Any] = set()

    # -- keys and connection details -------------------------------------------------------

    def _ensure_keys(self) -> None:
        if not self.host_key_path.exists():
            generate_ed25519_key(self.host_key_path, "turnover-signals sample sftp host key")
        if not self.client_private_key_path.exists():
            generate_ed25519_key(self.client_private_key_path, "turnover-signals sample sftp client")
        client_public = Path(str(self.client_private_key_path) + ".pub").read_text(encoding="ascii")
        self.authorized_keys_path.write_text(client_public, encoding="ascii")
        os.chmod(self.authorized_keys_path, 0o600)

    @property
    def client_private_key_pem(self) -> str:
        """The client's private key as OpenSSH PEM text (what goes into the `private_key` extra)."""
        return self.client_private_key_path.read_text(encoding="ascii")

    @property
    def host_public_key(self) -> str:
        """The host key as ``"ssh-ed25519 AAAA..."`` (type and base64, no comment)."""
        fields = Path(str(self.host_key_path) + ".pub").read_text(encoding="ascii").split()
        return f"{fields[0]} {fields[1]}"

    def airflow_connection(self, remote_dir: str = DEFAULT_REMOTE_DIR) -> dict[str, Any]:
        """The `hris_sftp` Airflow connection for this server, with the host key pinned.

        `host_key` carries the key type as well as the base64: the SSH provider reads a bare
        base64 value as an RSA key, so an ed25519 key must be spelled "ssh-ed25519 AAAA...".
        `look_for_keys` is off so the hook offers only this key, not the worker's ~/.ssh keys.
        """
        return {
            "conn_type": "sftp",
            "host": self.host,
            "port": self.port,
            "login": self.username,
            "extra": {
                "private_key": self.client_private_key_pem,
                "host_key": self.host_public_key,
                "no_host_key_check": False,
                "allow_host_key_change": False,
                "look_for_keys": False,
                "conn_timeout": 10,
                # The SSH hook compresses by default: 6x slower than the sftp client on a fast link.
                "compress": False,
                "remote_dir": remote_dir,
            },
        }

    def airflow_connection_json(self, remote_dir: str = DEFAULT_REMOTE_DIR) -> str:
        """The connection as JSON, the value for `AIRFLOW_CONN_HRIS_SFTP`."""
        return json.dumps(self.airflow_connection(remote_dir))

    def airflow_connection_env(self, remote_dir: str = DEFAULT_REMOTE_DIR) -> dict[str, str]:
        """``{"AIRFLOW_CONN_HRIS_SFTP": <json>}``, ready for `os.environ.update` or monkeypatch."""
        return {f"AIRFLOW_CONN_{HRIS_SFTP_CONN_ID.upper()}": self.airflow_connection_json(remote_dir)}

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        if self.backend == "sshd":
            return self._process is not None and self._process.poll() is None
        return self._acceptor is not None or self._paused

    def start(self) -> SftpSampleServer:
        """Start serving; returns once the port answers with an SSH banner. Reuses the same port."""
        if self.is_running:
            return self
        if self.backend == "sshd":
            self._start_sshd()
        else:
            self._start_asyncssh()
        return self

    def stop(self) -> None:
        """Stop the listener and kill every session. `start()` brings it back on the same port."""
        self._close_blackhole()
        self._paused = False
        if self.backend == "sshd":
            self._stop_sshd()
        else:
            self._stop_asyncssh()

    def close(self) -> None:
        """Stop and remove everything this server created (chroot, and the state dir it made)."""
        self.stop()
        self._remove_chroot()
        if self._owns_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> SftpSampleServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def sync(self) -> None:
        """Bring the served tree up to date with `root_dir` (only the "mirror" strategy needs it)."""
        if self.chroot_strategy == "mirror" and self.chroot_dir is not None:
            mirror_tree(self.root_dir, self.chroot_dir)

    # -- faults ------------------------------------------------------------------------------

    def drop_connections(self) -> int:
        """Kill every in-flight SSH session, keeping the listener. Returns how many were dropped."""
        if self.backend == "sshd":
            if self._process is None:
                return 0
            # Each connection is a child of the listener (its privsep monitor); the session
            # processes are grandchildren. Killing them all leaves only the listener.
            sessions = child_pids(self._process.pid)
            for pid in sessions:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return len(sessions)
        if self._loop is None:
            return 0
        connections = list(self._connections)
        for connection in connections:
            self._loop.call_soon_threadsafe(connection.abort)
        return len(connections)

    def pause(self) -> None:
        """Keep the port open but stop speaking SSH: new clients connect and then hang.

        In-flight sessions carry on. `resume()` answers the waiting clients (sshd) or lets new
        ones in (asyncssh).
        """
        if self._paused:
            return
        if self.backend == "sshd":
            if self._process is None:
                raise SftpServerError("server is not running")
            os.kill(self._process.pid, signal.SIGSTOP)
        else:
            self._run_in_loop(self._close_acceptor())
            self._blackhole = socket.create_server((self.host, self.port), backlog=64)
        self._paused = True

    def resume(self) -> None:
        """Undo `pause()`."""
        if not self._paused:
            return
        if self.backend == "sshd":
            if self._process is not None:
                os.kill(self._process.pid, signal.SIGCONT)
        else:
            self._close_blackhole()
            self._run_in_loop(self._open_acceptor())
        self._paused = False

    def _close_blackhole(self) -> None:
        if self._blackhole is not None:
            self._blackhole.close()
            self._blackhole = None

    # -- sshd backend ------------------------------------------------------------------------

    def _prepare_chroot(self) -> list[str]:
        """Choose the chroot strategy; returns the command prefix that sets it up (may be empty)."""
        if self.chroot_strategy is not None and self.chroot_dir is not None:
            self.sync()  # a restart serves what root_dir holds now, whatever the strategy
            return self._chroot_command_prefix()
        if is_chroot_safe(self.root_dir):
            self.chroot_strategy, self.chroot_dir = "direct", self.root_dir
            return []
        base = self._make_chroot_base()
        self._chroot_base = Path(tempfile.mkdtemp(prefix="chroot-", dir=base))
        os.chmod(self._chroot_base, 0o755)
        self.chroot_dir = self._chroot_base / "root"
        self.chroot_dir.mkdir(mode=0o755)
        if self._root_dir_bindable() and _private_mount_namespace_available():
            self.chroot_strategy = "bind"
        else:
            self.chroot_strategy = "mirror"
            mirror_tree(self.root_dir, self.chroot_dir)
            os.chmod(self.chroot_dir, 0o755)
        return self._chroot_command_prefix()

    def _chroot_command_prefix(self) -> list[str]:
        if self.chroot_strategy != "bind":
            return []
        # sh runs inside the new mount namespace; exec keeps the sshd pid equal to Popen's pid.
        script = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
        return [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
            script,
            "sh",
            str(self.root_dir),
            str(self.chroot_dir),
        ]

    def _root_dir_bindable(self) -> bool:
        info = os.stat(self.root_dir)
        return info.st_uid == 0 and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)

    def _make_chroot_base(self) -> Path:
        for candidate in (self.state_dir / "chroots", *map(Path, CHROOT_BASE_CANDIDATES)):
            try:
                candidate.mkdir(mode=0o755, parents=False, exist_ok=True)
            except OSError:
                continue
            if is_chroot_safe(candidate):
                return candidate
            if candidate.parent == self.state_dir:
                shutil.rmtree(candidate, ignore_errors=True)
        raise SftpServerError(
            "no root-owned, non-writable place for an sshd chroot: tried the state dir and "
            + ", ".join(CHROOT_BASE_CANDIDATES)
        )

    def _remove_chroot(self) -> None:
        if self._chroot_base is None:
            return
        chroot_dir = self.chroot_dir
        if self.chroot_strategy == "bind" and chroot_dir is not None and os.path.ismount(chroot_dir):
            # Never walk into a mounted root_dir: that would delete the caller's files.
            log.warning("chroot %s is still a mount point; leaving it in place", chroot_dir)
            return
        shutil.rmtree(self._chroot_base, ignore_errors=True)
        self._chroot_base = None
        self.chroot_dir = None
        self.chroot_strategy = None

    def _write_sshd_config(self) -> Path:
        config_path = self.state_dir / "sshd_config"
        pid_path = self.state_dir / "sshd.pid"
        lines = [
            f"ListenAddress {self.host}:{self.port}",
            f"HostKey {self.host_key_path}",
            f"PidFile {pid_path}",
            f"AuthorizedKeysFile {self.authorized_keys_path}",
            # The keys live in a temporary state dir whose modes sshd would otherwise reject.
            "StrictModes no",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "HostbasedAuthentication no",
            "PermitEmptyPasswords no",
            "PermitRootLogin prohibit-password",
            f"AllowUsers {self.username}",
            "UsePAM no",
            "AllowTcpForwarding no",
            "AllowAgentForwarding no",
            "X11Forwarding no",
            "PermitTTY no",
            "PrintMotd no",
            "UseDNS no",
            "LogLevel VERBOSE",
            "Subsystem sftp internal-sftp",
            f"ChrootDirectory {self.chroot_dir}",
            "ForceCommand internal-sftp",
        ]
        config_path.write_text("\n".join(lines) + "\n", encoding="ascii")
        return config_path

    def _start_sshd(self) -> None:
        sshd = find_sshd()
        assert sshd is not None
        # Debian's sshd refuses to start without its privilege separation directory.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        prefix = self._prepare_chroot()
        attempts = 1 if self.port else 5
        for attempt in range(attempts):
            if not self.port or attempt:
                self.port = free_loopback_port(self.host)
            config_path = self._write_sshd_config()
            check = subprocess.run([sshd, "-t", "-f", str(config_path)], capture_output=True, text=True)
            if check.returncode != 0:
                raise SftpServerError(f"sshd rejected the generated config: {check.stderr.strip()}")
            self._log_file = open(self.state_dir / "sshd.log", "ab")  # noqa: SIM115 - closed in _stop_sshd
            self._process = subprocess.Popen(
                [*prefix, sshd, "-D", "-e", "-f", str(config_path)],
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
            )
            try:
                self._wait_for_sshd()
                return
            except SftpServerError:
                self._stop_sshd()
                if attempt == attempts - 1:
                    raise

    def _wait_for_sshd(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise SftpServerError(
                    f"sshd exited with {self._process.returncode}: {self.read_log()[-2000:]}"
                )
            try:
                wait_for_ssh_banner(self.host, self.port, timeout=0.5)
                return
            except SftpServerError:
                continue
        raise SftpServerError(f"sshd did not answer on {self.host}:{self.port}: {self.read_log()[-2000:]}")

    def _stop_sshd(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            if self._paused:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGCONT)
            children = child_pids(process.pid) if process.poll() is None else []
            process.terminate()
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def read_log(self) -> str:
        """sshd's log so far (the sshd backend only)."""
        path = self.state_dir / "sshd.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    # -- asyncssh backend --------------------------------------------------------------------

    def _start_asyncssh(self) -> None:
        self.chroot_strategy, self.chroot_dir = "asyncssh", self.root_dir
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._loop_thread = threading.Thread(
                target=self._loop.run_forever, name="sftp-sample-asyncssh", daemon=True
            )
            self._loop_thread.start()
        self._run_in_loop(self._open_acceptor())

    def _stop_asyncssh(self) -> None:
        if self._loop is None:
            return
        self._run_in_loop(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._loop_thread is not None:
            self._loop_thread.join(timeout=5)
        self._loop.close()
        self._loop = None
        self._loop_thread = None
        self._connections.clear()

    def _run_in_loop(self, coroutine: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=START_TIMEOUT_SECONDS)

    async def _open_acceptor(self) -> None:
        import asyncssh

        server = self

        class _KeyOnlyServer(asyncssh.SSHServer):
            def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
                self._conn = conn
                server._connections.add(conn)

            def connection_lost(self, exc: Exception | None) -> None:
                server._connections.discard(self._conn)

            def begin_auth(self, username: str) -> bool:
                # Only the expected user gets authorized keys; anyone else has no way in.
                if username == server.username:
                    self._conn.set_authorized_keys(str(server.authorized_keys_path))
                return True

        def sftp_factory(channel: asyncssh.SSHServerChannel) -> asyncssh.SFTPServer:
            return asyncssh.SFTPServer(channel, chroot=os.fsencode(server.root_dir))

        self._acceptor = await asyncssh.listen(
            self.host,
            self.port,
            server_factory=_KeyOnlyServer,
            server_host_keys=[str(self.host_key_path)],
            sftp_factory=sftp_factory,
            allow_scp=False,
            reuse_address=True,
        )
        self.port = self._acceptor.get_port()

    async def _shutdown(self) -> None:
        """Close the listener, abort every session and let their tasks finish before the loop stops."""
        await self._close_acceptor()
        for connection in list(self._connections):
            connection.abort()
        deadline = time.monotonic() + 2.0
        while self._connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _close_acceptor(self) -> None:
        acceptor, self._acceptor = self._acceptor, None
        if acceptor is not None:
            acceptor.close()
            await acceptor.wait_closed()


_namespace_probe: bool | None = None


def _private_mount_namespace_available() -> bool:
    """Whether `unshare --mount` works here (root with CAP_SYS_ADMIN and util-linux)."""
    global _namespace_probe
    if _namespace_probe is None:
        if not shutil.which("unshare") or not shutil.which("mount"):
            _namespace_probe = False
        else:
            probe = subprocess.run(
                ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True
            )
            _namespace_probe = probe.returncode == 0
    return _namespace_probe


def main(argv: list[str] | None = None) -> int:
    """Run the sample SFTP server until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="directory served as the SFTP root")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--state-dir", default=None, help="keys and sshd config; reused if present")
    parser.add_argument("--backend", default="auto", choices=("auto", "sshd", "asyncssh"))
    parser.add_argument("--remote-dir", default=DEFAULT_REMOTE_DIR)
    args = parser.parse_args(argv)

    stop_requested = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop_requested.set())
    server = SftpSampleServer(args.root, args.host, args.port, args.state_dir, args.backend)
    with server:
        print(
            json.dumps(
                {
                    "host": server.host,
                    "port": server.port,
                    "backend": server.backend,
                    "chroot_strategy": server.chroot_strategy,
                    "username": server.username,
                    "client_private_key_path": str(server.client_private_key_path),
                    "conn_id": HRIS_SFTP_CONN_ID,
                    "connection": server.airflow_connection(args.remote_dir),
                }
            ),
            flush=True,
        )
        while not stop_requested.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
