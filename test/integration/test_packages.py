"""The Debian and RPM packages, installed and used (make check-packages, as root).

The .deb built by `make deb` is checked with lintian, installed with dpkg -i, its files, user
and permissions checked, and the installed pgmux started the way its systemd unit says
(ExecStart, User=, NOTIFY_SOCKET, READY=1) with the installed config plus a few lines that point
it at the test's PostgreSQL (a copy in a temporary directory: /etc/pgmux is never written);
psql connects through TCP and through the packaged unix socket directory. Then dpkg -r (the
conffiles and logs stay) and dpkg -P (they go; the system user stays, as Debian does). The rpm
built by `make rpm` is checked with rpm -qp: files and modes, config files, scriptlets and
dependencies.

Collected only with PGMUX_CHECK_PACKAGES=1, which make check-packages sets (conftest.py leaves
it out otherwise): it installs a package on this machine, which make check must not do.
"""
import glob
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile

import pytest

from conftest import PG_BIN
from pgcluster import ROOT, free_port

pytestmark = [pytest.mark.timeout(300)]

INI = "/etc/pgmux/pgmux.ini"
USERLIST = "/etc/pgmux/userlist.txt"
UNIT = "/lib/systemd/system/pgmux.service"


def run(*cmd, check=True, **kw):
    """Run cmd, echo it and its output (the transcript make check-packages shows with -s)."""
    r = subprocess.run(list(cmd), capture_output=True, text=True, **kw)
    print("$ " + " ".join(cmd))
    print((r.stdout + r.stderr).rstrip())
    if check and r.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited with {r.returncode}:\n{r.stdout}{r.stderr}")
    return r


def package_state():
    r = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", "pgmux"],
                       capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else ""


def one(pattern):
    found = glob.glob(os.path.join(ROOT, pattern))
    assert len(found) == 1, f"expected one {pattern} (make deb/rpm), found {found}"
    return found[0]


def mode_owner(path):
    st = os.stat(path)
    return (stat.S_IMODE(st.st_mode), pwd.getpwuid(st.st_uid).pw_name,
            grp.getgrgid(st.st_gid).gr_name)


def unit_value(text, key):
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(key + "=")]


@pytest.fixture
def installed_deb():
    """dpkg -i the built package; purged at the end whatever happens."""
    if os.geteuid() != 0:
        pytest.fail("make check-packages installs a package: run it as root")
    if package_state() not in ("", "un", "pn"):
        pytest.fail("a pgmux package is already installed here: remove it first (dpkg -P pgmux)")
    if os.path.exists("/etc/pgmux"):
        pytest.fail("/etc/pgmux exists (make install?): move it away first")
    deb = one("build/deb/pgmux_*.deb")
    try:
        yield deb
    finally:
        if package_state() not in ("", "un", "pn"):
            subprocess.run(["dpkg", "-P", "pgmux"], capture_output=True)


def test_lintian():
    changes = one("build/deb/pgmux_*.changes")
    r = run("lintian", "--pedantic", "--fail-on", "error,warning", changes, check=False)
    tags = [line for line in r.stdout.splitlines() if re.match(r"^[EW]: ", line)]
    assert r.returncode == 0 and not tags, r.stdout + r.stderr


@pytest.fixture
def workdir():
    """A directory the pgmux user can read (pytest's tmp_path is root's alone)."""
    d = tempfile.mkdtemp(prefix="pgmux-pkg-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_deb_install_run_remove_purge(installed_deb, pg, workdir):
    # -- install
    run("dpkg", "-i", installed_deb)
    assert package_state() == "ii"
    user = pwd.getpwnam("pgmux")
    assert user.pw_uid < 1000 and user.pw_shell == "/usr/sbin/nologin"
    conffiles = run("dpkg-query", "-W", "-f=${Conffiles}", "pgmux").stdout
    for f in (INI, USERLIST, "/etc/logrotate.d/pgmux"):
        assert f in conffiles, f"{f} is not a conffile"
    assert mode_owner(INI) == (0o640, "root", "pgmux")
    assert mode_owner(USERLIST) == (0o640, "root", "pgmux")
    assert mode_owner("/var/log/pgmux") == (0o2750, "pgmux", "adm")
    assert os.access("/usr/bin/pgmux", os.X_OK)
    for page in ("/usr/share/man/man1/pgmux.1.gz", "/usr/share/man/man5/pgmux.ini.5.gz",
                 "/lib/systemd/system/pgmux.socket", "/usr/lib/tmpfiles.d/pgmux.conf"):
        assert os.path.exists(page), page
    with open(INI) as f:
        ini = f.read()
    for line in ("unix_socket_dir = /run/pgmux", "auth_file = /etc/pgmux/userlist.txt",
                 "logfile = /var/log/pgmux/pgmux.log"):
        assert re.search("^" + re.escape(line) + "$", ini, re.M), line
    with open(USERLIST) as f:
        assert not [ln for ln in f if ln.startswith('"')], "live entries in packaged userlist"
    if shutil.which("systemd-tmpfiles"):
        assert mode_owner("/run/pgmux")[1:] == ("pgmux", "pgmux")   # made by postinst
    else:
        os.makedirs("/run/pgmux", exist_ok=True)
        shutil.chown("/run/pgmux", "pgmux", "pgmux")
    with open(UNIT) as f:
        unit = f.read()
    assert unit_value(unit, "Type") == ["notify"]
    if shutil.which("systemd-analyze"):
        run("systemd-analyze", "verify", "--man=no", UNIT, "/lib/systemd/system/pgmux.socket")
    if shutil.which("logrotate"):
        run("logrotate", "--debug", "/etc/logrotate.d/pgmux")

    # -- start as the unit does, with the installed config and what points it at our server
    port = free_port()
    conf = os.path.join(workdir, "pgmux.ini")
    with open(conf, "w") as f:
        f.write(ini + "\n# added by test_packages.py\n[pgmux]\n"
                f"listen_addr = 127.0.0.1\nlisten_port = {port}\nauth_type = any\n"
                f"[databases]\napp = host=127.0.0.1 port={pg.port} dbname=app user=postgres\n")
    os.chmod(conf, 0o644)
    notify_path = os.path.join(workdir, "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    os.chmod(notify_path, 0o777)
    exec_start = unit_value(unit, "ExecStart")[0].split()
    assert exec_start == ["/usr/bin/pgmux", INI]
    argv = [exec_start[0], str(conf)]
    unit_user = unit_value(unit, "User")[0]
    print(f"$ NOTIFY_SOCKET={notify_path} setpriv --reuid={unit_user} ... {' '.join(argv)}")
    r = run("setpriv", f"--reuid={unit_user}", f"--regid={unit_user}", "--init-groups", "--",
            "/usr/bin/pgmux", "--check", str(conf))
    assert "configuration OK" in r.stdout
    proc = subprocess.Popen(["setpriv", f"--reuid={unit_user}", f"--regid={unit_user}",
                             "--init-groups", "--", *argv],
                            env=dict(os.environ, NOTIFY_SOCKET=notify_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        notify.settimeout(15)
        ready = notify.recv(4096).decode()
        print("notify: " + ready.replace("\n", " "))
        assert ready.startswith("READY=1")
        assert pwd.getpwuid(os.stat(f"/proc/{proc.pid}").st_uid).pw_name == "pgmux"
        psql = [os.path.join(PG_BIN, "psql"), "-X", "-A", "-t", "-U", "postgres", "-d", "app"]
        r = run(*psql, "-h", "127.0.0.1", "-p", str(port), "-c",
                "select 'via tcp: ' || count(*) from pgbench_branches")
        assert r.stdout.strip() == "via tcp: 1"
        r = run(*psql, "-h", "/run/pgmux", "-p", str(port), "-c", "select 'via /run/pgmux'")
        assert r.stdout.strip() == "via /run/pgmux"
        assert mode_owner(f"/run/pgmux/.s.PGSQL.{port}")[1] == "pgmux"
        with open("/var/log/pgmux/pgmux.log") as f:
            log = f.read()
        assert "login ok" in log
        assert mode_owner("/var/log/pgmux/pgmux.log")[1] == "pgmux"
        proc.send_signal(signal.SIGINT)          # the unit's KillSignal
        notify.settimeout(10)
        assert notify.recv(4096).decode() == "STOPPING=1"
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()
        print(proc.stderr.read())

    # -- remove: conffiles and logs stay, the binary goes
    run("dpkg", "-r", "pgmux")
    assert package_state() == "rc"
    assert not os.path.exists("/usr/bin/pgmux")
    assert os.path.exists(INI) and os.path.exists(USERLIST)
    assert os.path.exists("/var/log/pgmux/pgmux.log")

    # -- purge: conffiles, /etc/pgmux and logs go; the system user stays
    run("dpkg", "-P", "pgmux")
    assert package_state() in ("", "un", "pn")
    for gone in ("/etc/pgmux", "/var/log/pgmux", "/etc/logrotate.d/pgmux", "/run/pgmux",
                 "/lib/systemd/system/pgmux.service",
                 "/etc/systemd/system/multi-user.target.wants/pgmux.service"):
        assert not os.path.exists(gone), f"{gone} left after purge"
    assert pwd.getpwnam("pgmux")


def rpm_query(*args):
    return run("rpm", "-qp", *args, one("build/rpm/RPMS/*/pgmux-*.rpm")).stdout


def test_rpm_contents():
    files = rpm_query("-l").split()
    for f in ("/usr/bin/pgmux", INI, USERLIST, "/usr/lib/systemd/system/pgmux.service",
              "/usr/lib/systemd/system/pgmux.socket", "/etc/logrotate.d/pgmux",
              "/usr/lib/tmpfiles.d/pgmux.conf", "/var/log/pgmux", "/run/pgmux"):
        assert f in files, f
    assert any(f.startswith("/usr/share/man/man1/pgmux.1") for f in files)
    assert any(f.startswith("/usr/share/man/man5/pgmux.ini.5") for f in files)
    assert set(rpm_query("-c").split()) == {INI, USERLIST, "/etc/logrotate.d/pgmux"}
    modes = {line.split()[-1]: line.split()[:4] for line in rpm_query("-lv").splitlines()}
    assert modes[INI][0] == "-rw-r-----" and modes[INI][2:4] == ["root", "pgmux"]
    assert modes["/var/log/pgmux"][2:4] == ["pgmux", "adm"]

    scripts = rpm_query("--scripts")
    pre = scripts.split("preinstall scriptlet")[1].split("scriptlet")[0]
    assert "useradd -r" in pre and "groupadd -r pgmux" in pre
    for phase in ("postinstall", "preuninstall", "postuninstall"):
        assert phase + " scriptlet" in scripts
    assert re.search(r"systemctl.*pgmux\.service|%systemd_post", scripts)

    requires = rpm_query("--requires")
    for lib in ("libev.so.4", "libcares.so.2", "libpq.so.5", "libssl.so.3", "libjson-c.so.5",
                "libcurl.so.4", "libinih.so.1", "shadow-utils", "logrotate"):
        assert lib in requires, lib
