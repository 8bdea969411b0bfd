"""systemd/relay.service and relay@.service: accepted by systemd-analyze, hardened, and
the hardening really leaves Relay's media stack working.

`systemd-analyze verify` checks that the unit's command exists. The units name
/opt/relay/venv/bin/relay (where scripts/install puts it), absent on a build machine,
so each unit is verified twice: as shipped, where the only message allowed is that
this one command is not executable, and as a copy whose ExecStart points at this
checkout's console script, which must verify without a single message.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.tools import require

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
UNITS = {"relay.service": "relay.service", "relay@.service": "relay@studio-a.service"}
INSTALLED_RELAY = "/opt/relay/venv/bin/relay"
MAX_EXPOSURE = 2.0


def unit_text(name: str) -> str:
    return (REPO / "systemd" / name).read_text()


def directives(name: str) -> dict[str, list[str]]:
    """Every `Key=value` of the unit, values in order (keys may repeat)."""
    found: dict[str, list[str]] = {}
    for line in unit_text(name).splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def verify(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require("systemd-analyze"), "verify", str(path)], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("name", list(UNITS))
def test_shipped_unit_verifies_but_for_the_missing_install(name: str, tmp_path: Path) -> None:
    path = tmp_path / UNITS[name]  # a template is verified through an instance
    path.write_text(unit_text(name))
    result = verify(path)
    messages = [m for m in (result.stdout + result.stderr).splitlines() if m.strip()]
    missing = f"{path.name}: Command {INSTALLED_RELAY} is not executable: No such file or directory"
    assert messages == [missing]


@pytest.mark.parametrize("name", list(UNITS))
def test_unit_pointing_at_this_checkout_verifies_cleanly(name: str, tmp_path: Path) -> None:
    relay = Path(sys.executable).parent / "relay"
    assert relay.exists(), "the console script of this checkout's venv (./scripts/setup)"
    path = tmp_path / UNITS[name]
    path.write_text(unit_text(name).replace(INSTALLED_RELAY, str(relay)))
    result = verify(path)
    assert result.returncode == 0, result.stderr
    assert (result.stdout + result.stderr).strip() == ""


@pytest.mark.parametrize("name", list(UNITS))
def test_security_exposure_is_low_and_the_comment_says_it(name: str, tmp_path: Path) -> None:
    path = tmp_path / UNITS[name]
    path.write_text(unit_text(name))
    result = subprocess.run([require("systemd-analyze"), "security", "--offline=true", str(path)],
                            capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert m, result.stdout[-2000:] + result.stderr
    score = float(m.group(1))
    assert score <= MAX_EXPOSURE
    documented = re.search(r"overall exposure (\d+\.\d)", unit_text(name))
    assert documented and float(documented.group(1)) == score, "update the score in the unit's comment"


@pytest.mark.parametrize("name", list(UNITS))
def test_service_contract(name: str) -> None:
    d = directives(name)
    one = {k: v[-1] for k, v in d.items()}
    assert one["Type"] == "notify"
    assert one["NotifyAccess"] == "main"
    assert one["Restart"] == "always"
    # Back on air within 4 s of a restart: listening before OBS's first retry, 2 s after
    # the drop (tests/faults/test_daemon_kill.py); never 0, a failing start must not spin.
    assert re.fullmatch(r"\d+ms", one["RestartSec"]) and 100 <= int(one["RestartSec"][:-2]) <= 500
    assert one["RestartPreventExitStatus"] == "78"  # a configuration error must not loop
    assert re.fullmatch(r"\d+s", one["WatchdogSec"]) and int(one["WatchdogSec"][:-1]) >= 5
    assert re.fullmatch(r"\d+s", one["TimeoutStopSec"]) and int(one["TimeoutStopSec"][:-1]) > 5
    assert one["User"] == "relay"
    assert int(one["LimitNOFILE"]) >= 8192  # a connection flood must not starve the other sockets
    assert "relay" in one["StateDirectory"].split()
    assert one["CapabilityBoundingSet"] == ""
    assert one["NoNewPrivileges"] == "yes"
    assert one["ProtectSystem"] == "strict"
    assert one["MemoryDenyWriteExecute"] == "yes"
    assert set(one["RestrictAddressFamilies"].split()) == {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"}
    assert d["SystemCallFilter"][0] == "@system-service"
    config = "/etc/relay/relay.toml" if name == "relay.service" else "/etc/relay/%i.toml"
    assert one["ExecStart"] == f"{INSTALLED_RELAY} run -c {config}"


def test_template_gives_each_instance_its_own_journal() -> None:
    d = directives("relay@.service")
    assert "relay/%i" in d["StateDirectory"][-1].split()
    assert "RELAY_JOURNAL__PATH=%S/relay/%i/journal.sqlite3" in d["Environment"]


# Linux 6.3+ prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN): the kernel's own form of what
# MemoryDenyWriteExecute=yes enforces (no mapping both writable and executable, no
# mprotect that makes writable memory executable).
_UNDER_MDWE = textwrap.dedent("""
    import ctypes, mmap
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(65, 1, 0, 0, 0) == 0, ctypes.get_errno()
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        raise SystemExit("the rule is not in force")
    except PermissionError:
        pass
    import io
    import av, numpy
    from relay.push.slate import encode_slate
    clip = encode_slate(None, None, None, 30.0, seconds=0.5)   # libx264 + AAC
    buf = io.BytesIO()
    with av.open(buf, "w", format="flv") as out:
        s = out.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 320, 180, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(numpy.full((180, 320, 3), i * 20, numpy.uint8), format="rgb24")
            for p in s.encode(frame):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    buf.seek(0)
    with av.open(buf, "r", format="flv") as inp:
        decoded = sum(1 for _ in inp.decode(video=0))
    import relay.watch.analysis, relay.watch.host, aiomqtt
    print(len(clip.video), decoded, relay.watch.host.read_host_sample("/").mem_free_pct > 0)
""")


def test_pyav_and_numpy_work_without_writable_executable_memory() -> None:
    result = subprocess.run([sys.executable, "-c", _UNDER_MDWE], capture_output=True, text=True,
                            timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    slate_frames, decoded, host_ok = result.stdout.split()
    assert int(slate_frames) >= 10 and int(decoded) == 10 and host_ok == "True"


# -- scripts/install, staged into a temporary root (never into / in a test) --------------


def checkout_copy(tmp: Path) -> Path:
    """What the script reads from a checkout, frozen: others may edit the tree meanwhile."""
    src = tmp / "checkout"
    for part in ("scripts", "relay", "config", "systemd"):
        shutil.copytree(REPO / part, src / part, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "requirements.lock"):
        shutil.copy2(REPO / name, src / name)
    return src


def run_install(src: Path, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(src / "scripts" / "install"), "--root", str(root), "--python", sys.executable,
                           *args], capture_output=True, text=True, timeout=300)


def test_install_stages_venv_units_and_configuration_idempotently(tmp_path: Path) -> None:
    root = tmp_path / "root"
    src = checkout_copy(tmp_path)
    first = run_install(src, root)
    assert first.returncode == 0, first.stdout + first.stderr

    venv_relay = root / "opt/relay/venv/bin/relay"
    version = subprocess.run([str(venv_relay), "--version"], capture_output=True, text=True, timeout=60)
    assert version.stdout.strip().startswith("relay ")
    venv_python = str(root / "opt/relay/venv/bin/python")
    where = subprocess.run([venv_python, "-c", "import relay; print(relay.__file__)"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert where.stdout.startswith(str(root / "opt/relay/venv")), "a real install, not a link to the checkout"
    assert not (src / "build").exists(), "pip must build from a copy, not in the checkout"
    # the pinned versions of requirements.lock, not whatever is newest today
    pinned: dict[str, set[str]] = {}  # a package may have one pin per Python version (markers)
    for name, ver in re.findall(r"^([a-z0-9-]+)==([^ ;]+)", (src / "requirements.lock").read_text(), re.M):
        pinned.setdefault(name, set()).add(ver)
    installed = subprocess.run([venv_python, "-m", "pip", "list", "--format=freeze"], capture_output=True,
                               text=True, timeout=60).stdout
    for name, ver in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", installed, re.M):
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in pinned:
            assert ver in pinned[key], (name, ver, pinned[key])
    assert {"av", "aiomqtt", "pydantic"} <= {re.sub(r"[-_.]+", "-", n).lower()
                                               for n in re.findall(r"^([A-Za-z0-9_.-]+)==", installed, re.M)}

    for name in UNITS:
        assert (root / "etc/systemd/system" / name).read_text() == unit_text(name)
    config = root / "etc/relay/relay.toml"
    text = config.read_text()
    assert "config/example-secrets" not in text and '"/etc/relay/mqtt.pass"' in text
    assert config.stat().st_mode & 0o777 == 0o640
    assert (root / "etc/relay").stat().st_mode & 0o777 == 0o750
    for secret in ("backup.pass", "mqtt.pass", "taobao.urls"):
        assert (root / "etc/relay" / secret).stat().st_mode & 0o777 == 0o640
    assert "systemctl enable --now relay" in first.stdout and "relay config-check" in first.stdout

    # The staged configuration is valid once it sits in /etc/relay: check it with the
    # staged relay, its absolute paths pointed into the staging root.
    in_place = tmp_path / "in-place.toml"
    in_place.write_text(text.replace('"/etc/relay/', f'"{root}/etc/relay/'))
    check = subprocess.run([str(venv_relay), "config-check", "-c", str(in_place)], capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    mqtt_password = (REPO / "config/example-secrets/mqtt.pass").read_text().strip()
    assert mqtt_password not in check.stdout + check.stderr

    # Again: nothing reinstalled, the edited configuration kept as it is.
    config.write_text(text + "\n# edited by the studio\n")
    second = run_install(src, root)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "up to date" in second.stdout and "keeping the existing" in second.stdout
    assert config.read_text().endswith("# edited by the studio\n")


def test_install_refuses_an_unknown_option(tmp_path: Path) -> None:
    result = run_install(REPO, tmp_path / "root", "--frobnicate")
    assert result.returncode == 2
    assert "unknown option --frobnicate" in result.stderr
    assert not (tmp_path / "root" / "opt").exists()
