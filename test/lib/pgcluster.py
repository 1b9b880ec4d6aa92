"""Throwaway PostgreSQL 15 servers and pgmux processes for tests, the demo and benchmarks.

PostgreSQL refuses to run as root, and CI runs as root: when we are root, every PostgreSQL
program runs as the `postgres` OS user (created by Debian's postgresql package) in a data
directory that user owns. Ports are free loopback ports picked at start.
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time

PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PGMUX_BIN = os.environ.get("PGMUX_BIN", os.path.join(ROOT, "pgmux"))


def _sanitized(path):
    """Was pgmux built with AddressSanitizer (make SANITIZE=1)?"""
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


SANITIZED = _sanitized(PGMUX_BIN)


# Roles the test servers have; listed in a pgmux's default auth_file.
DEFAULT_USERS = ("postgres", "alice", "bob", "carol")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_pg_user(cmd):
    """Prefix cmd so that it runs as the postgres OS user when we are root. Callers run it with
    cwd="/": the postgres user may not be allowed into the directory make was started from, and
    initdb and pg_ctl complain about it."""
    if os.geteuid() != 0:
        return cmd
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"] + cmd


def wait_port(port, timeout=15.0, host="127.0.0.1"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


class PgCluster:
    """One PostgreSQL server in its own temporary directory.

    hba: pg_hba.conf lines (default: trust for everything on loopback and the socket).
    settings: extra postgresql.conf lines.
    """

    def __init__(self, basedir=None, port=None, hba=None, settings=None):
        self.owned_dir = basedir is None
        self.basedir = basedir or tempfile.mkdtemp(prefix="pgmux-pg-")
        self.datadir = os.path.join(self.basedir, "data")
        self.sockdir = self.basedir
        self.port = port or free_port()
        self.hba = hba or [
            "local all all trust",
            "host all all 127.0.0.1/32 trust",
            "host all all ::1/128 trust",
        ]
        self.settings = settings or []
        self.running = False

    def _chown(self):
        if os.geteuid() == 0:
            shutil.chown(self.basedir, "postgres", "postgres")
            os.chmod(self.basedir, 0o755)

    def init(self):
        self._chown()
        subprocess.run(as_pg_user([os.path.join(PG_BIN, "initdb"), "-D", self.datadir,
                                   "-U", "postgres", "-A", "trust", "-E", "UTF8",
                                   "--locale=C", "--no-sync"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd="/")
        conf = [
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            f"unix_socket_directories = '{self.sockdir}'",
            "max_connections = 300",
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
            "shared_buffers = 64MB",
            "logging_collector = off",
        ] + list(self.settings)
        with open(os.path.join(self.datadir, "postgresql.auto.conf"), "a") as f:
            f.write("\n".join(conf) + "\n")
        with open(os.path.join(self.datadir, "pg_hba.conf"), "w") as f:
            f.write("\n".join(self.hba) + "\n")
        return self

    def start(self):
        log = os.path.join(self.basedir, "postgres.log")
        subprocess.run(as_pg_user([os.path.join(PG_BIN, "pg_ctl"), "-D", self.datadir,
                                   "-l", log, "-w", "-t", "60", "start"]),
                       check=True, stdout=subprocess.DEVNULL, cwd="/")
        self.running = True
        return self

    def restart(self, mode="fast"):
        """pg_ctl restart: every connection to the server is dropped, the port stays the same."""
        log = os.path.join(self.basedir, "postgres.log")
        subprocess.run(as_pg_user([os.path.join(PG_BIN, "pg_ctl"), "-D", self.datadir,
                                   "-l", log, "-m", mode, "-w", "-t", "60", "restart"]),
                       check=True, stdout=subprocess.DEVNULL, cwd="/")
        self.running = True
        return self

    def log_path(self):
        return os.path.join(self.basedir, "postgres.log")

    def stop(self, mode="fast"):
        if self.running:
            subprocess.run(as_pg_user([os.path.join(PG_BIN, "pg_ctl"), "-D", self.datadir,
                                       "-m", mode, "-w", "stop"]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")
            self.running = False

    def destroy(self):
        self.stop("immediate")
        if self.owned_dir:
            shutil.rmtree(self.basedir, ignore_errors=True)

    def dsn(self, dbname="postgres", user="postgres", **kw):
        extra = " ".join(f"{k}={v}" for k, v in kw.items())
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={user} {extra}".strip()

    def sql(self, query, dbname="postgres", user="postgres"):
        """Run query with psql and return its unaligned, tuples-only output."""
        out = subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-v",
                              "ON_ERROR_STOP=1", "-d", self.dsn(dbname, user), "-c", query],
                             check=True, capture_output=True, text=True)
        return out.stdout.strip()


class Pgmux:
    """One pgmux process with its own config file, port and log."""

    def __init__(self, databases, settings=None, users=None, basedir=None, port=None,
                 extra_sections="", stderr_path=None):
        self.basedir = basedir or tempfile.mkdtemp(prefix="pgmux-")
        self.port = port or free_port()
        self.config_path = os.path.join(self.basedir, "pgmux.ini")
        self.log_path = os.path.join(self.basedir, "pgmux.log")
        self.databases = databases
        # auth_type = trust admits only users in auth_file (as PgBouncer): unless a test brings
        # its own, the test roles are listed, without passwords, so that a login sends the
        # server what it would without an auth_file (the server trusts postgres on loopback).
        self.default_auth_file = os.path.join(self.basedir, "default-userlist.txt")
        self.settings = {
            "listen_addr": "127.0.0.1",
            "listen_port": str(self.port),
            "unix_socket_dir": "",
            "auth_type": "trust",
            "auth_file": self.default_auth_file,
            "admin_users": "postgres",
            "logfile": self.log_path,
            "pidfile": os.path.join(self.basedir, "pgmux.pid"),
        }
        self.settings.update({k: str(v) for k, v in (settings or {}).items()})
        self.users = users or {}
        self.extra_sections = extra_sections
        # None: stderr is a pipe (proc.stderr); a path: stderr is written to that file, so a
        # long-running pgmux can never block on a full pipe and sanitizer reports are kept.
        self.stderr_path = stderr_path
        self.proc = None

    def write_config(self):
        if self.settings.get("auth_file") == self.default_auth_file:
            # the console's users too (admin_users = admin in the demos)
            console = [u.strip() for key in ("admin_users", "stats_users")
                       for u in self.settings.get(key, "").replace(",", " ").split()]
            users = list(DEFAULT_USERS) + [u for u in console if u not in DEFAULT_USERS]
            with open(self.default_auth_file, "w") as f:
                f.writelines(f'"{user}" ""\n' for user in users)
        lines = ["[pgmux]"] + [f"{k} = {v}" for k, v in self.settings.items()]
        lines += ["", "[databases]"] + [f"{k} = {v}" for k, v in self.databases.items()]
        if self.users:
            lines += ["", "[users]"] + [f"{k} = {v}" for k, v in self.users.items()]
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n" + self.extra_sections)

    def start(self, args=()):
        self.write_config()
        if self.stderr_path:
            with open(self.stderr_path, "ab") as err:
                self.proc = subprocess.Popen([PGMUX_BIN, *args, self.config_path],
                                             stdout=subprocess.DEVNULL, stderr=err)
        else:
            self.proc = subprocess.Popen([PGMUX_BIN, *args, self.config_path],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 10
        while True:
            # with -d the process we started exits 0 once the daemon is forked: keep waiting
            if self.proc.poll() not in (None, 0):
                raise RuntimeError(f"pgmux exited with {self.proc.returncode} at start:\n"
                                   + self.log() + self._stderr_after_exit())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if time.time() > deadline:
                    self.proc.kill()
                    self.proc.wait()
                    raise RuntimeError("pgmux did not start:\n" + self.log()
                                       + self._stderr_after_exit())
                time.sleep(0.05)
        return self

    def _stderr_after_exit(self):
        if self.stderr_path:
            return self.stderr()
        try:
            return self.proc.stderr.read().decode(errors="replace")
        except (OSError, ValueError, AttributeError):
            return ""

    def stderr(self):
        """What pgmux wrote to stderr, when it goes to stderr_path ("" otherwise)."""
        if not self.stderr_path:
            return ""
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def reload(self):
        """Rewrite the config file from the current settings and send SIGHUP."""
        self.write_config()
        self.proc.send_signal(1)

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, sig=15, timeout=10):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def dsn(self, dbname="postgres", user="postgres", **kw):
        extra = " ".join(f"{k}={v}" for k, v in kw.items())
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={user} {extra}".strip()
