"""The machine description every benchmark result carries."""

import os
import platform
import subprocess
from importlib import metadata

from stack import OPA, REPO


def _first_line(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=10)
    except OSError:
        return "?"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "?"


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):  # noqa: SIM115 - short read
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _ghz_version() -> str:
    # `go install` builds report "dev"; the pinned version is the Makefile's GHZ_VERSION.
    for line in (REPO / "Makefile").read_text().splitlines():
        if line.startswith("GHZ_VERSION :="):
            return line.split(":=", 1)[1].strip() + " (go install, Makefile GHZ_VERSION)"
    return _first_line([str(REPO / "bin" / "ghz"), "--version"])


def describe() -> dict[str, str]:
    mem = "?"
    try:
        kib = int(open("/proc/meminfo", encoding="utf-8").readline().split()[1])  # noqa: SIM115
        mem = f"{kib / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": _cpu_model(),
        "cpus": str(len(os.sched_getaffinity(0))),
        "memory": mem,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "grpcio": _version("grpcio"),
        "wasmtime": _version("wasmtime"),
        "cryptography": _version("cryptography"),
        "uvloop": _version("uvloop"),
        "opa": _first_line([str(OPA), "version"]),
        "ghz": _ghz_version(),
    }
