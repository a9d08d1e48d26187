"""`dlrun tensorboard`: TensorBoard over a runs folder, bound to the loopback interface unless asked otherwise."""

from __future__ import annotations

import ipaddress
import logging
import socket
from pathlib import Path

from runner.kernel.errors import ConfigError, EnvironmentProblem

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 6006


def is_loopback(host: str) -> bool:
    """True when every address `host` resolves to is a loopback address."""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos)


def serve(runs_dir, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> int:
    """Blocks serving TensorBoard on host:port for every run under `runs_dir`."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise ConfigError(f"{runs_dir}: no such directory; pass the folder that holds your runs (output.dir, "
                          "default 'runs')")
    if not is_loopback(host):
        log.warning(f"warning: --host {host}: TensorBoard has no authentication; anyone who can reach this machine on "
              f"port {port} can read every run under {runs_dir}. Prefer the default 127.0.0.1 with an SSH "
              f"tunnel (ssh -L {port}:127.0.0.1:{port} HOST)")
    from tensorboard import program

    board = program.TensorBoard()
    board.configure(logdir=str(runs_dir), host=host, port=port)
    if board.main() != 0:
        raise EnvironmentProblem(f"TensorBoard did not start on {host}:{port} (see the error above); "
                                 "pick another --port or --host")
    return 0
