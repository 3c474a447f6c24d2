"""Private Redis and PostgreSQL servers for chaos tests, on spare ports in temp dirs.

Chaos tests kill and restart these; the machine's shared servers (5432, 6379) are never touched.
Both servers run as direct children of this process (no pg_ctl start, no daemonizing), so we
reap them ourselves and know exactly when they are gone; PID 1 here reaps orphans only lazily, and
a zombie still answers os.kill(pid, 0).
"""
import atexit
import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.stack import free_port

SHARED_PORTS = {5432, 6379}


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (a zombie answers os.kill(pid, 0) too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _stat(pid)[:1] not in ([], ["Z"])


def _stat(pid: int | str) -> list[str]:
    """Fields of /proc/PID/stat after the command name: [state, ppid, pgrp, ...]; [] if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def descendants(pid: int) -> list[int]:
    """Children, grandchildren... of pid. PostgreSQL backends setsid() themselves, so the
    server's process group does not hold them: follow parent links instead."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit() and (fields := _stat(d)):
            children.setdefault(int(fields[1]), []).append(int(d))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def _wait_until(ready, proc: subprocess.Popen, log: Path, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready after {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


def _spare_port() -> int:
    while (port := free_port()) in SHARED_PORTS:  # never collide with the shared servers
        pass
    return port


class _Server:
    """Common process handling: SIGKILL the server and its children, reap, clean up at exit."""

    proc: subprocess.Popen | None = None
    port: int | None = None

    def __init__(self, prefix: str):
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.log = self.dir / "server.log"
        atexit.register(self.close)  # a crashed test run must not leave servers behind

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pids(self) -> list[int]:
        """The server's live processes (for checks that nothing is left behind)."""
        return [p for p in [self.proc.pid, *descendants(self.proc.pid)] if pid_alive(p)] if self.running else []

    def kill(self) -> None:
        """Crash: SIGKILL the server and every process it forked, and wait until they are gone."""
        if self.proc is None:
            return
        if self.proc.returncode is None:
            pid = self.proc.pid
            # Freeze it first, so it forks nothing new while we list its children and none of
            # them is reaped (so their numbers stay ours until we signal them).
            os.kill(pid, signal.SIGSTOP)
            deadline = time.monotonic() + 5
            while _stat(pid)[:1] not in (["T"], ["Z"], []) and time.monotonic() < deadline:
                time.sleep(0.005)
            victims = [pid, *descendants(pid)]
            for victim in victims:
                try:
                    os.kill(victim, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait()
            deadline = time.monotonic() + 10
            while any(map(pid_alive, victims)) and time.monotonic() < deadline:
                time.sleep(0.01)
        self.proc = None  # reaped: never signal that number again

    def close(self) -> None:
        """Stop for good and remove the temp dir; idempotent."""
        try:
            self.stop()
        finally:
            self.kill()  # whatever a graceful stop left behind
            shutil.rmtree(self.dir, ignore_errors=True)
            atexit.unregister(self.close)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


class RedisServer(_Server):
    """redis-server without persistence (like the shared one), on 127.0.0.1 only."""

    def __init__(self):
        super().__init__("trainyard-redis-")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _ping(self) -> bool:
        import redis

        try:
            with redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1) as client:
                return client.ping()
        except redis.RedisError:
            return False

    def start(self, port: int | None = None) -> "RedisServer":
        if self.running:
            return self
        fixed = port or self.port
        for _ in range(1 if fixed else 3):  # a picked port can be taken before redis binds it
            self.port = fixed or _spare_port()
            with self.log.open("ab") as log:
                self.proc = subprocess.Popen(
                    ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no", "--dir", str(self.dir), "--daemonize", "no"],
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                _wait_until(self._ping, self.proc, self.log, "redis-server", 10)
                return self
            except RuntimeError:
                self.kill()
                if fixed:
                    raise
        raise RuntimeError(f"redis-server did not start:\n{self.log.read_text(errors='replace')[-3000:]}")

    def restart(self) -> "RedisServer":
        """Start again on the same port (after kill() or stop(); stops it first if running)."""
        self.stop()
        return self.start(self.port)

    def stop(self) -> None:
        if self.running:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


def _pg_bindir() -> Path:
    """The directory holding initdb, pg_ctl and postgres (PATH first, then the newest Debian install)."""
    candidates = [os.environ.get("TRAINYARD_PG_BINDIR", "")]
    if which := shutil.which("pg_ctl"):
        candidates.append(os.path.dirname(os.path.realpath(which)))
    installed = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(installed, key=lambda d: [int(n) for n in re.findall(r"\d+", d)], reverse=True)
    for d in filter(None, candidates):
        if all(os.access(os.path.join(d, b), os.X_OK) for b in ("initdb", "pg_ctl", "postgres")):
            return Path(d)
    raise RuntimeError("PostgreSQL binaries (initdb, pg_ctl, postgres) not found")


class PostgresServer(_Server):
    """A throwaway PostgreSQL cluster (trust auth, user postgres) with a `trainyard` database."""

    def __init__(self):
        super().__init__("trainyard-pg-")
        self.bindir = _pg_bindir()
        self.data = self.dir / "data"
        self.sockets = self.dir / "sock"  # its own unix socket dir, not /var/run/postgresql
        # PostgreSQL refuses to run as root: run every PostgreSQL binary as the postgres user,
        # which then must own the temp dir. Popen(user=...) drops privileges right before exec,
        # so the Popen is the postmaster itself (runuser would fork and sit in between).
        self.user = {}
        if os.geteuid() == 0:
            pw = pwd.getpwnam(os.environ.get("TRAINYARD_PG_USER", "postgres"))
            self.user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        # PG* variables (PGHOST, PGPORT, PGDATA...) from the caller must not steer our binaries.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"HOME": str(self.dir)}

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/trainyard"

    def conninfo(self, dbname: str = "trainyard") -> str:
        """A libpq URL for psycopg.connect."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str) -> None:
        res = subprocess.run([str(self.bindir / args[0]), *args[1:]], cwd=self.dir, env=self.env,
                             capture_output=True, text=True, timeout=120, **self.user)
        if res.returncode:
            raise RuntimeError(f"{args[0]} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")

    def _connectable(self) -> bool:
        import psycopg

        try:
            psycopg.connect(self.conninfo("postgres"), connect_timeout=2).close()
            return True
        except psycopg.OperationalError:  # refused, or "starting up" during crash recovery
            return False

    def _spawn(self) -> None:
        self.sockets.mkdir(exist_ok=True)
        if self.user:
            os.chown(self.sockets, self.user["user"], self.user["group"])
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                 "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.sockets}",
                 # fsync=off is safe against process crashes (the kernel keeps the writes); only an
                 # OS crash could lose data, which these tests do not simulate.
                 "-c", "fsync=off"],
                cwd=self.dir, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, **self.user)
        _wait_until(self._connectable, self.proc, self.log, "postgres", 60)

    def start(self) -> "PostgresServer":
        """initdb, start on a spare port and create the trainyard database."""
        import psycopg

        if self.port is not None:
            return self.start_again()
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync",
                  "-E", "UTF8", "--locale=C", "--no-instructions")
        for attempt in range(3):  # a picked port can be taken before postgres binds it
            self.port = _spare_port()
            try:
                self._spawn()
                break
            except RuntimeError:
                self.kill()
                if attempt == 2:
                    raise
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE trainyard")
        return self

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self.kill()
            self._drop_shared_memory()
            super().close()

    def _drop_shared_memory(self) -> None:
        """A crashed cluster's small System V segment outlives it (PostgreSQL only removes it on its
        next start); left alone, each killed-then-closed server would use up one of the kernel's
        few thousand segment ids. Only ours goes: its id and key from our postmaster.pid, unattached."""
        try:
            key, shmid = (self.data / "postmaster.pid").read_text().splitlines()[6].split()
            table = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
        except (OSError, IndexError, ValueError):
            return  # clean shutdown (no postmaster.pid) or no System V segment
        if any(row.split()[:2] == [key, shmid] and row.split()[6] == "0" for row in table):
            subprocess.run(["ipcrm", "-m", shmid], capture_output=True, check=False)

    def start_again(self) -> "PostgresServer":
        """Start on the same port and data dir, e.g. after kill(): PostgreSQL runs crash recovery."""
        if self.port is None:
            return self.start()
        if not self.running:
            self._spawn()
        return self

    def stop(self, mode: str = "fast") -> None:
        """Graceful shutdown via pg_ctl (mode: smart, fast or immediate); keeps the data dir."""
        if self.running:
            try:
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "30")
            except (RuntimeError, subprocess.TimeoutExpired):
                pass  # kill() below makes sure it is gone
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
