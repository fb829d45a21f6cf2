"""Where a serving process spends its time: py-spy samples `sekisho serve` under ghz load.

Starts the bench stack (bench/stack.py) with caches warm (`--mode warm`) or off (`--mode miss`),
drives ExchangeToken with ghz, records py-spy for `--seconds`, and prints the frames with the
largest inclusive and self shares of all samples (the tables in bench/results/hot_path.md).

    .venv/bin/python bench/pyspy_profile.py [--mode miss] [--seconds 10] [--top 40] [--native]
        [--raw F]
"""

import argparse
import collections
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from loadgen import EXCHANGE, run_ghz
from stack import (
    REPO,
    Idp,
    Settings,
    exchange_messages,
    policy_folder,
    start_server,
    workload,
    write_config,
)

PY_SPY = REPO / ".venv" / "bin" / "py-spy"
SKIP = ("asyncio/", "threading.py", "sekisho/cli.py", "commands/serve.py", "<module>")


def record(mode: str, seconds: float, out: Path, native: bool = False) -> None:
    cpus = ("0", "1") if len(os.sched_getaffinity(0)) >= 2 else ("", "")
    with tempfile.TemporaryDirectory(prefix="sekisho-profile-") as tmp:
        root = Path(tmp)
        idp = Idp()
        try:
            load = workload()
            messages = exchange_messages(idp, load)
            policy_folder(root, load)
            config = write_config(root, idp, Settings(caches=mode == "warm"))
            server = start_server(root, config, cpus[0])
            try:
                run_ghz("fill", server, EXCHANGE, messages, total=len(messages), cpus=cpus[1])
                load_thread = threading.Thread(
                    target=run_ghz,
                    args=("load", server, EXCHANGE, messages),
                    kwargs={"seconds": seconds + 3, "cpus": cpus[1]},
                )
                load_thread.start()
                time.sleep(1)
                subprocess.run(
                    [
                        str(PY_SPY),
                        "record",
                        "--pid",
                        str(server.process.pid),
                        "--duration",
                        str(int(seconds)),
                        "--rate",
                        "200",
                        "--format",
                        "raw",
                        "--output",
                        str(out),
                        *(["--native"] if native else ["--nonblocking"]),
                    ],
                    check=True,
                    capture_output=True,
                )
                load_thread.join()
            finally:
                server.stop()
        finally:
            idp.close()


def summarise(raw: Path, top: int) -> str:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():  # py-spy may cut a name mid-character
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():  # a frame name with a newline in it (generated code)
            continue
        samples = int(count)
        total += samples
        frames = stack.split(";")
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    lines = [f"{total} samples", "", "inclusive:"]
    shown = [(f, n) for f, n in inclusive.most_common() if not f.startswith(SKIP)]
    lines += [
        f"{100 * n / total:5.1f}%  {f}" for f, n in shown[:top] if not any(s in f for s in SKIP)
    ]
    lines += ["", "self:"]
    lines += [f"{100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top // 2)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("warm", "miss"), default="miss")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--native", action="store_true", help="C frames too (pauses the process)")
    parser.add_argument("--raw", type=Path, help="also keep py-spy's raw samples here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "profile.txt"
        record(args.mode, args.seconds, raw, args.native)
        if args.raw:
            args.raw.write_bytes(raw.read_bytes())
        print(summarise(raw, args.top))


if __name__ == "__main__":
    main()
