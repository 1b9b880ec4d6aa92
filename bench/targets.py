"""The three things pgbench is pointed at: PostgreSQL itself, PgBouncer and pgmux.

Both poolers get the same settings: transaction pooling, the same pool size, the same client
limit, the same auth method and auth_file, connection logging off. An instance serves one auth
method: "trust" (user postgres, no password) or "md5" (user benchmd5 with a password stored as
md5 in PostgreSQL and in the poolers' auth_file, so the pooler can also log in to the server).

PostgreSQL and PgBouncer refuse to run as root; when we are root they run as the postgres OS
user in directories it owns. Every process inherits our RLIMIT_NOFILE, which bench.py raises to
the hard limit before starting anything, so each pooler can hold 10,000 clients.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "test", "lib"))

from pgcluster import PG_BIN, PGMUX_BIN, Pgmux, PgCluster, as_pg_user, free_port  # noqa: E402

PGBOUNCER_BIN = os.environ.get("PGBOUNCER_BIN", "/usr/sbin/pgbouncer")
DBNAME = "bench"
MD5_USER = "benchmd5"
MD5_PASSWORD = "bench-md5-secret"
MAX_CLIENT_CONN = 10500


def md5_secret(user, password):
    return "md5" + hashlib.md5((password + user).encode()).hexdigest()


def user_for(auth):
    return MD5_USER if auth == "md5" else "postgres"


def env_for(auth):
    env = dict(os.environ)
    env.pop("PGPASSWORD", None)
    if auth == "md5":
        env["PGPASSWORD"] = MD5_PASSWORD
    return env


def _tail(path, n=20):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def _wait_listening(port, proc, timeout):
    import socket
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _pg_owned_dir(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    if os.geteuid() == 0:
        shutil.chown(d, "postgres", "postgres")
        os.chmod(d, 0o755)
    return d


def _write_as_pg(path, text):
    with open(path, "w") as f:
        f.write(text)
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


class Backend:
    """The PostgreSQL 15 server behind everything, with the pgbench tables loaded once."""

    def __init__(self, scale):
        self.scale = scale
        self.cluster = PgCluster(hba=[
            "local all all trust",
            f"host all {MD5_USER} 127.0.0.1/32 md5",
            "host all all 127.0.0.1/32 trust",
        ], settings=["max_connections = 300"])

    @property
    def port(self):
        return self.cluster.port

    def start(self):
        self.cluster.init().start()
        c = self.cluster
        c.sql(f"CREATE DATABASE {DBNAME}")
        c.sql("SET password_encryption = 'md5'; "
              f"CREATE ROLE {MD5_USER} LOGIN PASSWORD '{MD5_PASSWORD}'")
        subprocess.run([os.path.join(PG_BIN, "pgbench"), "-i", "-q", "-s", str(self.scale),
                        "-h", "127.0.0.1", "-p", str(c.port), "-U", "postgres", DBNAME],
                       check=True, capture_output=True)
        c.sql(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {MD5_USER}", dbname=DBNAME)
        c.sql("VACUUM ANALYZE", dbname=DBNAME)
        c.sql("CHECKPOINT")
        return self

    def destroy(self):
        self.cluster.destroy()


class Direct:
    name = "direct"
    label = "direct"
    pid = None
    config_text = ""

    def __init__(self, backend, auth, pool_size=None):
        self.backend = backend
        self.auth = auth
        self.port = backend.port
        self.error = None

    def start(self):
        return True

    def alive(self):
        return True

    def stop(self):
        pass

    def describe(self):
        return f"PostgreSQL 15 on 127.0.0.1:{self.port} (max_connections=300)"

    def log_tail(self):
        return ""

    def destroy(self):
        pass


class Pooler:
    """What PgBouncer and pgmux have in common: one process, one port, one auth method."""

    pid = None

    def __init__(self, backend, auth, pool_size):
        self.backend = backend
        self.auth = auth
        self.pool_size = pool_size
        self.port = free_port()
        self.proc = None
        self.error = None
        self.config_text = ""

    def settings(self):
        return {
            "listen_addr": "127.0.0.1",
            "listen_port": str(self.port),
            "pool_mode": "transaction",
            "default_pool_size": str(self.pool_size),
            "max_client_conn": str(MAX_CLIENT_CONN),
            "auth_type": self.auth,
            "admin_users": "postgres",
            "log_connections": "0",
            "log_disconnections": "0",
            "ignore_startup_parameters": "extra_float_digits",
            # PgBouncer's default of 128 drops SYNs when hundreds of clients connect at once.
            "listen_backlog": "1024",
        }

    def database_line(self):
        return (f"host=127.0.0.1 port={self.backend.port} dbname={DBNAME} "
                f"pool_size={self.pool_size}")

    def auth_file_text(self):
        return (f'"postgres" ""\n'
                f'"{MD5_USER}" "{md5_secret(MD5_USER, MD5_PASSWORD)}"\n')

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def nofile_limit(self):
        try:
            with open(f"/proc/{self.pid}/limits") as f:
                for line in f:
                    if line.startswith("Max open files"):
                        return int(line.split()[3])
        except (OSError, ValueError, TypeError):
            pass
        return None


class PgBouncer(Pooler):
    name = "pgbouncer"
    label = "PgBouncer"

    def start(self):
        if not os.access(PGBOUNCER_BIN, os.X_OK):
            self.error = f"{PGBOUNCER_BIN} not found"
            return False
        self.dir = _pg_owned_dir("bench-pgbouncer-")
        self.ini = os.path.join(self.dir, "pgbouncer.ini")
        self.log = os.path.join(self.dir, "pgbouncer.log")
        auth_file = os.path.join(self.dir, "userlist.txt")
        s = self.settings()
        s.update({
            "unix_socket_dir": "",
            "auth_file": auth_file,
            "logfile": self.log,
            "pidfile": os.path.join(self.dir, "pgbouncer.pid"),
        })
        self.config_text = ("[databases]\n"
                            f"{DBNAME} = {self.database_line()}\n\n[pgbouncer]\n"
                            + "".join(f"{k} = {v}\n" for k, v in s.items()))
        _write_as_pg(self.ini, self.config_text)
        _write_as_pg(auth_file, self.auth_file_text())
        self.stderr = open(os.path.join(self.dir, "stderr.log"), "w")
        self.proc = subprocess.Popen(as_pg_user([PGBOUNCER_BIN, "-q", self.ini]),
                                     stdout=subprocess.DEVNULL, stderr=self.stderr)
        self.pid = self.proc.pid
        if not _wait_listening(self.port, self.proc, 10):
            self.error = "PgBouncer did not start: " + self.log_tail()
            self.stop()
            return False
        return True

    def describe(self):
        out = subprocess.run([PGBOUNCER_BIN, "--version"], capture_output=True, text=True)
        return out.stdout.splitlines()[0] if out.stdout else "PgBouncer"

    def log_tail(self):
        return _tail(self.log) + _tail(os.path.join(self.dir, "stderr.log"))

    def destroy(self):
        self.stop()
        shutil.rmtree(getattr(self, "dir", ""), ignore_errors=True)


class PgmuxTarget(Pooler):
    name = "pgmux"
    label = "pgmux"

    mux = None

    def start(self):
        if not os.access(PGMUX_BIN, os.X_OK):
            self.error = "./pgmux not built"
            return False
        mux = Pgmux({DBNAME: self.database_line()}, port=self.port)
        auth_file = os.path.join(mux.basedir, "userlist.txt")
        with open(auth_file, "w") as f:
            f.write(self.auth_file_text())
        mux.settings["auth_file"] = auth_file
        return self.launch(mux)

    def launch(self, mux):
        """Start pgmux with mux's config (our settings on top); False (self.error) if it did not
        come up."""
        self.mux = mux
        self.dir = mux.basedir
        mux.settings.update(self.settings())
        mux.write_config()
        with open(mux.config_path) as f:
            self.config_text = f.read()
        self.stderr = open(os.path.join(self.dir, "stderr.log"), "w")
        self.proc = subprocess.Popen([PGMUX_BIN, "-q", mux.config_path],
                                     stdout=subprocess.DEVNULL, stderr=self.stderr)
        self.pid = self.proc.pid
        if not _wait_listening(self.port, self.proc, 10):
            self.error = "pgmux did not start: " + self.log_tail()
            self.stop()
            return False
        return True

    def describe(self):
        out = subprocess.run([PGMUX_BIN, "--version"], capture_output=True, text=True)
        text = (out.stdout or out.stderr).strip()
        return text.splitlines()[0] if text else "pgmux"

    def log_tail(self):
        if not self.mux:
            return ""
        return _tail(self.mux.log_path) + _tail(os.path.join(self.dir, "stderr.log"))

    def destroy(self):
        self.stop()
        shutil.rmtree(getattr(self, "dir", None) or "", ignore_errors=True)


TARGETS = {"direct": Direct, "pgbouncer": PgBouncer, "pgmux": PgmuxTarget}
