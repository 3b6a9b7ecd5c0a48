"""`kiro-tui service install|uninstall|status`: the unit and the plist as written, and the
service manager driven through stand-in `systemctl` / `launchctl` commands on PATH that
record their arguments (the real ones would start a service on the test machine). The first
test runs the installed command, whose own path the unit names; the rest run it in process."""

from __future__ import annotations

import json
import os
import plistlib
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.run import InProcessCli, run_cli

STANDIN = r"""#!/bin/sh
# Records its arguments, one JSON array a line; answers like the real command would.
python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@" >> "{log}"
state="{state}"
case "$*" in
  *show-environment*) [ -e "$state.broken" ] && exit 1; echo "PATH=/usr/bin"; exit 0 ;;
  *"enable --now"*) touch "$state.enabled" ;;
  *"disable --now"*) rm -f "$state.enabled" ;;
  *is-enabled*) if [ -e "$state.enabled" ]; then echo enabled; exit 0; else echo disabled; exit 1; fi ;;
  bootstrap*) touch "$state.enabled" ;;
  bootout*) [ -e "$state.enabled" ] || exit 3; rm -f "$state.enabled" ;;
  print*) [ -e "$state.enabled" ] || exit 113 ;;
esac
exit 0
"""


@pytest.fixture
def standins(tmp_path: Path) -> dict:
    """`systemctl` and `launchctl` stand-ins first on PATH; what each was asked, by name."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    logs = {}
    for name in ("systemctl", "launchctl"):
        log = tmp_path / f"{name}.log"
        script = bin_dir / name
        script.write_text(STANDIN.replace("{log}", str(log)).replace("{state}", str(tmp_path / name)))
        script.chmod(0o755)
        logs[name] = log
    return {"env": {"PATH": f"{bin_dir}:{os.environ['PATH']}"}, "logs": logs, "dir": tmp_path}


def calls(standins: dict, name: str) -> list[list[str]]:
    log = standins["logs"][name]
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def unit_file(isolated_dirs: Path) -> Path:
    return isolated_dirs / "config" / "systemd" / "user" / "kiro-tui.service"


def test_systemd_install_writes_a_unit_systemd_accepts_and_enables_it(kiro_tui_exe, isolated_dirs, standins,
                                                                    tmp_path) -> None:
    done = run_cli(kiro_tui_exe, "service", "install", env=standins["env"])
    assert done.code == 0, done.err
    unit = unit_file(isolated_dirs)
    text = unit.read_text()
    assert f"ExecStart={kiro_tui_exe} watch\n" in text
    assert "Restart=on-failure\n" in text and "WantedBy=default.target\n" in text
    assert f"Environment=XDG_DATA_HOME={isolated_dirs / 'data'}\n" in text  # the same store as this shell's
    assert "loginctl enable-linger" in done.out
    assert calls(standins, "systemctl") == [["--user", "show-environment"], ["--user", "daemon-reload"],
                                            ["--user", "enable", "--now", "kiro-tui.service"]]
    if shutil.which("systemd-analyze"):
        runtime = tmp_path / "runtime"
        runtime.mkdir(mode=0o700)
        verified = subprocess.run(["systemd-analyze", "verify", "--user", str(unit)], capture_output=True, text=True,
                                  env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)})
        assert verified.returncode == 0, verified.stderr

    status = run_cli(kiro_tui_exe, "service", "status", "--json", env=standins["env"])
    assert status.code == 0
    assert status.json() == {"manager": "systemd", "unit_path": str(unit), "installed": True, "enabled": True,
                             "runners": []}

    gone = run_cli(kiro_tui_exe, "service", "uninstall", env=standins["env"])
    assert gone.code == 0, gone.err
    assert not unit.exists()
    assert calls(standins, "systemctl")[-2:] == [["--user", "disable", "--now", "kiro-tui.service"],
                                                ["--user", "daemon-reload"]]
    after = run_cli(kiro_tui_exe, "service", "status", "--json", env=standins["env"]).json()
    assert (after["installed"], after["enabled"]) == (False, False)


def test_no_start_only_writes_the_file(cli: InProcessCli, isolated_dirs, standins) -> None:
    done = cli("service", "install", "--manager", "systemd", "--no-start", env=standins["env"])
    assert done.code == 0, done.err
    assert unit_file(isolated_dirs).exists()
    assert calls(standins, "systemctl") == []
    assert "systemctl --user enable --now kiro-tui.service" in done.out


def test_a_unit_written_by_someone_else_is_kept_without_force(cli: InProcessCli, kiro_tui_exe, isolated_dirs, standins) -> None:
    unit = unit_file(isolated_dirs)
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\nExecStart=/usr/bin/their-own\n")
    refused = cli("service", "install", env=standins["env"])
    assert refused.code == 1
    assert f"{unit} exists and was not written by kiro-tui" in refused.err and "--force" in refused.err
    assert unit.read_text() == "[Service]\nExecStart=/usr/bin/their-own\n"
    assert cli("service", "uninstall", env=standins["env"]).code == 1
    assert unit.exists()
    forced = cli("service", "install", "--force", env=standins["env"])
    assert forced.code == 0, forced.err
    assert "ExecStart=" + kiro_tui_exe in unit.read_text()
    again = cli("service", "install", env=standins["env"])  # ours now: updated in place
    assert again.code == 0, again.err


def test_no_manager_is_said_in_one_line_with_the_command_to_run_by_hand(cli: InProcessCli, isolated_dirs,
                                                                        standins) -> None:
    (standins["dir"] / "systemctl.broken").touch()  # `systemctl --user` does not answer (a container)
    done = cli("service", "install", env=standins["env"])
    assert done.code == 1
    assert len(done.err.strip().splitlines()) == 1 and "`kiro-tui watch`" in done.err
    assert not unit_file(isolated_dirs).exists()
    status = cli("service", "status", "--json", env=standins["env"])
    assert status.code == 0
    assert status.json() == {"manager": None, "unit_path": None, "installed": False, "enabled": False,
                             "runners": []}


def test_secrets_in_the_environment_are_not_written(cli: InProcessCli, isolated_dirs, standins) -> None:
    env = {**standins["env"], "HTTPS_PROXY": "http://me:hunter2@proxy.example:3128",
           "NO_PROXY": "localhost", "AWS_SECRET_ACCESS_KEY": "abc123secret"}
    done = cli("service", "install", env=env)
    assert done.code == 0, done.err
    text = unit_file(isolated_dirs).read_text()
    assert "hunter2" not in text and "abc123secret" not in text and "HTTPS_PROXY" not in text
    assert "Environment=NO_PROXY=localhost" in text
    assert "HTTPS_PROXY holds a password" in done.err


def test_launchd_agent_is_a_plist_and_is_bootstrapped(cli: InProcessCli, kiro_tui_exe, isolated_dirs, standins) -> None:
    done = cli("service", "install", "--manager", "launchd", env=standins["env"])
    assert done.code == 0, done.err
    plist = isolated_dirs / "Library" / "LaunchAgents" / "io.github.kiro-tui.watch.plist"
    agent = plistlib.loads(plist.read_bytes())
    assert agent["Label"] == "io.github.kiro-tui.watch"
    assert agent["ProgramArguments"] == [kiro_tui_exe, "watch"]
    assert agent["RunAtLoad"] is True and agent["KeepAlive"] == {"SuccessfulExit": False}
    logs = isolated_dirs / "state" / "kiro-tui" / "log"
    assert Path(agent["StandardOutPath"]).parent == logs and Path(agent["StandardErrorPath"]).parent == logs
    assert agent["EnvironmentVariables"]["XDG_DATA_HOME"] == str(isolated_dirs / "data")
    domain = f"gui/{os.getuid()}"
    assert calls(standins, "launchctl") == [["bootout", f"{domain}/io.github.kiro-tui.watch"],
                                            ["bootstrap", domain, str(plist)]]
    status = cli("service", "status", "--manager", "launchd", "--json", env=standins["env"])
    assert (status.json()["installed"], status.json()["enabled"]) == (True, True)

    gone = cli("service", "uninstall", "--manager", "launchd", env=standins["env"])
    assert gone.code == 0, gone.err
    assert not plist.exists()
    assert calls(standins, "launchctl")[-1] == ["bootout", f"{domain}/io.github.kiro-tui.watch"]
