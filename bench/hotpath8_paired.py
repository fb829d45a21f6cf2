"""Served vs in-process exchange handler, in short alternating windows (paired, drift-robust).

The host's speed drifts by ±30 % within minutes, so comparing one served run with one
in-process run minutes apart cannot resolve a 30 % effect. Here both sides live at once, pinned
to CPU 0, and take turns in windows of `--window` seconds, `--rounds` times (the order flips
every round):

  served: `sekisho serve` whose interceptor-wrapped ExchangeToken is timed alone
          (`time.thread_time()` around it; the handler never suspends) under ghz on CPU 1
          (concurrency 32, 4 connections, the bench's all-miss messages);
  in process: a second process driving the same interceptor-wrapped handler back to back over
          the same messages (bench/hotpath5_probe.py's FakeContext, no grpc), audit lines to a
          file as the server's.

Both time the same code: the difference is what runs between two exchanges on the core (grpc.aio,
uvloop, grpc core's threads, the kernel's network path). Per window: the median µs per call of
each side; the result is the median of the per-round ratios (served / in process). Also per
served window: the loop thread's whole CPU per call (/proc, over the window) and what of it is
outside the timed handler (that minus the handler's mean): grpc.aio, uvloop, the admission
wrapper, (de)serialisation, the kernel's socket work on the loop thread); and, after the pair,
a window of ghz echo (grpc.health.v1 Check): the loop thread's CPU per echo call (calls from
ghz's rate over the window). `--move-threads`: odd rounds with every server thread but the loop
thread on CPU 0 (as served normally), even rounds with them moved to CPU 1 (`taskset -p`).

    PATH=$PWD/bin:$PATH .venv/bin/python bench/hotpath8_paired.py [--kind miss] [--rounds 10]
"""

import argparse
import asyncio
import contextvars
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def serve(config: str, out: str) -> int:
    """`sekisho serve`, the wrapped ExchangeToken timed per call; SIGUSR1 writes the samples
    taken since the last SIGUSR1 to `out` (JSON list of µs) and starts a new window."""
    from sekisho.cli import main
    from sekisho.rpc import interceptors

    original = interceptors.ErrorMappingInterceptor._wrap
    samples: list[float] = []

    def wrap(self: Any, behaviour: Any) -> Any:
        inner = original(self, behaviour)
        if getattr(behaviour, "__name__", "") != "ExchangeToken":
            return inner

        async def timed(request: Any, context: Any) -> Any:
            started = time.thread_time()
            try:
                return await inner(request, context)
            finally:
                samples.append((time.thread_time() - started) * 1e6)

        return timed

    def dump(*_: Any) -> None:
        Path(out + ".tmp").write_text(json.dumps(samples))
        os.replace(out + ".tmp", out)
        samples.clear()

    interceptors.ErrorMappingInterceptor._wrap = wrap  # type: ignore[method-assign]
    signal.signal(signal.SIGUSR1, dump)
    return main(["serve", "--config", config])


async def _inproc(config: Path, messages: list[dict[str, Any]], log: Path) -> None:
    import hotpath5_probe as probe
    from sekisho import service as service_module
    from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
    from sekisho.config import load_settings
    from sekisho.logs import configure_logging
    from sekisho.rpc.interceptors import ErrorMappingInterceptor
    from sekisho.rpc.servicer import TokenExchangeServicer

    captured: list[TokenExchangeServicer] = []
    original = TokenExchangeServicer.__init__

    def capture(self: TokenExchangeServicer, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        captured.append(self)

    TokenExchangeServicer.__init__ = capture  # type: ignore[method-assign]
    settings = load_settings(config)
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
    configure_logging(settings.logging.level, settings.logging.format, request_id)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(log.open("a"))  # as the server's stdout
    service = await service_module.start_service(settings, request_id=request_id)
    try:
        wrapped = ErrorMappingInterceptor(request_id)._wrap(captured[0].ExchangeToken)
        requests = [pb.ExchangeTokenRequest(**m) for m in messages]
        for request in requests:
            await wrapped(request, probe.FakeContext())
        print("ready", flush=True)
        n = 0
        for line in sys.stdin:  # one window per line: the seconds to run
            samples = []
            ends = time.monotonic() + float(line)
            while time.monotonic() < ends:
                started = time.thread_time()
                await wrapped(requests[n % len(requests)], probe.FakeContext())
                samples.append((time.thread_time() - started) * 1e6)
                n += 1
            print(json.dumps(samples), flush=True)
    finally:
        await service.stop(0.1)


def inproc(config: str, messages: str, log: str) -> int:
    from sekisho.eventloop import install as install_event_loop

    install_event_loop("uvloop")
    os.chdir(Path(config).parent)
    asyncio.run(_inproc(Path(config), json.loads(Path(messages).read_text()), Path(log)))
    return 0


def _place_threads(pid: int, cpus: str) -> None:
    """Every thread of the server but the loop (main) thread onto `cpus`."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        if int(task.name) != pid:
            subprocess.run(["taskset", "-pc", cpus, task.name], check=False, capture_output=True)


def drive(kind: str, rounds: int, window: float, move_threads: bool) -> None:  # noqa: PLR0915 - one bench script
    import exchange_throughput as et
    import stack
    from loadgen import ECHO, EXCHANGE, run_ghz

    me = str(Path(__file__).resolve())
    python = str(stack.REPO / ".venv" / "bin" / "python")
    with tempfile.TemporaryDirectory(prefix="sekisho-paired-") as tmp:
        root = Path(tmp)
        bench = et.Bench(root, 1, window)
        settings = stack.Settings(workers=1, caches=kind == "warm")
        config = stack.write_config(root, bench.idp, settings)
        messages = root / "messages.json"
        messages.write_text(json.dumps(bench.messages))
        out = root / "served.json"
        os.environ["BENCH_SRV"] = me  # stack.start_server runs `python THIS CONFIG`
        server = stack.start_server(root, config, bench.server_cpus)
        text = config.read_text()  # the same configuration on other ports
        for key in ("grpc_listen", "http_listen", "\nlisten"):
            listen = text.split(f'{key} = "', 1)[1].split('"', 1)[0]
            text = text.replace(listen, f"127.0.0.1:{stack.free_port()}")
        second = root / "inproc.toml"
        second.write_text(text)
        log = root / "inproc.log"
        probe = subprocess.Popen(
            ["taskset", "-c", "0", python, me, "inproc", str(second), str(messages), str(log)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert probe.stdin is not None
        assert probe.stdout is not None
        try:
            while (line := probe.stdout.readline()).strip() != "ready":
                if not line:
                    raise SystemExit("the in-process driver exited before it was ready")
            run_ghz("warm-up", server, EXCHANGE, bench.messages, seconds=2, cpus=bench.load_cpus)

            pid = server.process.pid

            def thread_cpu() -> float:  # the loop thread's run time, ns precision
                text = Path(f"/proc/{pid}/task/{pid}/schedstat").read_text()
                return int(text.split()[0]) / 1e9

            def echo_window() -> float:
                runs: list[Any] = []
                load = threading.Thread(
                    target=lambda: runs.append(
                        run_ghz("e", server, ECHO, [{}], seconds=window + 0.6, cpus=bench.load_cpus)
                    )
                )
                load.start()
                time.sleep(0.4)
                cpu, started = thread_cpu(), time.monotonic()
                time.sleep(window)
                cpu, elapsed = thread_cpu() - cpu, time.monotonic() - started
                load.join()
                return cpu / (runs[0].throughput * elapsed) * 1e6

            loop_cpu: list[float] = []  # the served loop thread's whole CPU per call, by window

            def served_window() -> list[float]:
                load = threading.Thread(
                    target=run_ghz,
                    args=("w", server, EXCHANGE, bench.messages),
                    kwargs={"seconds": window + 0.6, "cpus": bench.load_cpus},
                )
                load.start()
                time.sleep(0.4)  # ghz connected and running
                cpu = thread_cpu()
                server.process.send_signal(signal.SIGUSR1)  # start the window
                time.sleep(window)
                out.unlink(missing_ok=True)
                server.process.send_signal(signal.SIGUSR1)
                cpu = thread_cpu() - cpu
                load.join()
                while not out.exists():
                    time.sleep(0.05)
                samples = list(json.loads(out.read_text()))
                loop_cpu.append(cpu / len(samples) * 1e6)
                return samples

            def inproc_window() -> list[float]:
                assert probe.stdin is not None
                assert probe.stdout is not None
                probe.stdin.write(f"{window}\n")
                probe.stdin.flush()
                line = probe.stdout.readline()
                while not line.startswith("["):
                    if not line:
                        raise SystemExit("the in-process driver exited")
                    line = probe.stdout.readline()
                return list(json.loads(line))

            ratios = []
            print(
                f"{'round':<6}{'load':>5}{'served µs':>11}{'n':>6}{'in proc µs':>11}{'n':>6}"
                f"{'ratio':>7}{'loop/call':>10}{'outside':>8}{'echo':>6}"
            )
            by_place: dict[str, list[float]] = {}
            for n in range(1, rounds + 1):
                load_average = os.getloadavg()[0]
                place = "cpu0"
                if move_threads:  # alternate rounds: grpc's threads beside the loop or on CPU 1
                    place = "cpu0" if n % 2 else "moved"
                    _place_threads(pid, "0" if place == "cpu0" else "1")
                if (n // 2 if move_threads else n) % 2:
                    s, p = served_window(), inproc_window()
                else:
                    p, s = inproc_window(), served_window()
                echo = echo_window()
                ms, mp = statistics.median(s), statistics.median(p)
                ratios.append(ms / mp)
                by_place.setdefault(place, []).append(ms / mp)
                print(
                    f"{n:<6}{load_average:>5.1f}{ms:>11.0f}{len(s):>6}{mp:>11.0f}{len(p):>6}"
                    f"{ms / mp:>7.2f}{loop_cpu[-1]:>10.0f}{loop_cpu[-1] - statistics.mean(s):>8.0f}"
                    f"{echo:>6.0f}" + (f"  {place}" if move_threads else ""),
                    flush=True,
                )
            print(
                f"median ratio served / in process: {statistics.median(ratios):.2f} "
                f"(min {min(ratios):.2f}, max {max(ratios):.2f}, {rounds} rounds)"
            )
            if move_threads:
                for place, values in by_place.items():
                    print(f"  grpc threads {place}: median ratio {statistics.median(values):.2f}")
        finally:
            probe.stdin.close()
            probe.wait(timeout=30)
            server.stop()
            bench.idp.close()


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1].endswith(".toml"):  # BENCH_SRV: python THIS CONFIG
        sys.exit(serve(sys.argv[1], str(Path(sys.argv[1]).parent / "served.json")))
    if len(sys.argv) > 1 and sys.argv[1] == "inproc":
        sys.exit(inproc(sys.argv[2], sys.argv[3], sys.argv[4]))
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=("miss", "warm"), default="miss")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--window", type=float, default=1.5)
    parser.add_argument(
        "--move-threads",
        action="store_true",
        help="alternate rounds with grpc's threads on CPU 0 (beside the loop) and on CPU 1",
    )
    arguments = parser.parse_args()
    drive(arguments.kind, arguments.rounds, arguments.window, arguments.move_threads)
