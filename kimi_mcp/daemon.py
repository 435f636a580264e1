"""`kimi-mcp start|stop|restart|logs`: the server in the background, a pid file and a log file."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kimi_mcp.config import Settings
from kimi_mcp.errors import KimiError


def pid_file(settings: Settings) -> Path:
    return settings.data_dir / "kimi-mcp.pid"


def log_file(settings: Settings) -> Path:
    return settings.data_dir / "kimi-mcp.log"


def running_pid(settings: Settings) -> int | None:
    path = pid_file(settings)
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        path.unlink(missing_ok=True)  # a stale pid file from a crashed server
        return None
    except PermissionError:
        return pid
    return pid


def start(args: argparse.Namespace, settings: Settings) -> int:
    import httpx

    pid = running_pid(settings)
    if pid is not None:
        raise KimiError(f"already running (pid {pid}); `kimi-mcp restart` to restart it")
    from kimi_mcp.commands import check_port

    check_port(settings)
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        log = log_file(settings).open("ab")
    except OSError as exc:
        raise KimiError(f"cannot write to the data dir {settings.data_dir}: {exc.strerror}") from None
    cmd = [sys.executable, "-m", "kimi_mcp", "serve",
           "--host", settings.server.host, "--port", str(settings.server.port)]
    if settings.config_file:
        cmd += ["--config", str(settings.config_file)]
    for root in settings.workspace_roots():
        cmd += ["--workspace", str(root)]
    env = {**os.environ, "KIMI_MCP_DATA_DIR": str(settings.data_dir)}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, env=env, cwd=str(settings.launch_dir))
    log.close()
    pid_file(settings).write_text(str(proc.pid))
    url = f"http://{settings.server.host}:{settings.server.port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pid_file(settings).unlink(missing_ok=True)
            raise KimiError(f"the server exited at start (code {proc.returncode}); "
                            f"see {log_file(settings)}")
        try:
            if httpx.get(f"{url}/health", timeout=0.5).status_code == 200:
                sys.stdout.write(f"started (pid {proc.pid}) at {url}/ — logs: {log_file(settings)}\n")
                return 0
        except httpx.HTTPError:
            time.sleep(0.2)
    raise KimiError(f"the server did not answer /health within 20 s; see {log_file(settings)}")


def stop(args: argparse.Namespace, settings: Settings) -> int:
    pid = running_pid(settings)
    if pid is None:
        # a `kimi-mcp serve` run in a terminal is not ours to stop
        sys.stdout.write(f"not running: no server started by `kimi-mcp start` with the data dir "
                         f"{settings.data_dir}\n")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    pid_file(settings).unlink(missing_ok=True)
    sys.stdout.write(f"stopped (pid {pid})\n")
    return 0


def restart(args: argparse.Namespace, settings: Settings) -> int:
    stop(args, settings)
    return start(args, settings)


def logs(args: argparse.Namespace, settings: Settings) -> int:
    path = log_file(settings)
    if not path.exists():
        raise KimiError(f"no log yet at {path}; start the server with `kimi-mcp start`")
    with path.open("rb") as fh:
        lines = fh.read().splitlines()[-args.lines:]
        for line in lines:
            sys.stdout.write(line.decode(errors="replace") + "\n")
        sys.stdout.flush()
        while args.follow:
            chunk = fh.readline()
            if chunk:
                sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()
            else:
                time.sleep(0.3)
    return 0
