"""Local child processes that serve the API (the demo, benchmarks and tests start them): a port to
serve on, and a stop that leaves neither an orphan nor a zombie behind."""

from __future__ import annotations

import socket
import subprocess


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_process(process: subprocess.Popen, *, grace_s: float = 20) -> None:
    """Ask the process to exit, kill it if it has not within ``grace_s``, and reap it either way."""
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
