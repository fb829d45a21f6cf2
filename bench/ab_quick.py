"""One side of an alternating A/B round (hot path, part 2): echo + warm (after a fill pass) +
all-miss + all-miss with `[policy] pool_size = 2`, on the build this file's checkout serves
(bench/stack.py's REPO), through exchange_throughput.py's Bench. Prints `RESULT` lines.

Run from a checkout, alternating base and new, e.g. (base = a detached worktree sharing the venv
through PYTHONPATH):

    for i in 1 2 3 4 5 6; do
      (cd BASE && PYTHONPATH=BASE/server PATH=$PWD/bin:$PATH .venv/bin/python bench/ab_quick.py 3)
      (cd NEW && PATH=$PWD/bin:$PATH .venv/bin/python bench/ab_quick.py 3)
    done

`--no-pool2` leaves out the `pool_size = 2` scenario (bench/hotpath5_ab.py runs both sides this
way through this one file, the code under test chosen by PYTHONPATH).
"""

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import exchange_throughput as et
from loadgen import ECHO
from stack import Settings, start_server, write_config


class _Done(Exception):
    """The scenarios asked for have run."""


def main(seconds: float, pool2: bool = True) -> None:
    with tempfile.TemporaryDirectory(prefix="sekisho-ab-") as tmp:
        bench = et.Bench(Path(tmp), 1, seconds)
        out = {}
        try:
            server = bench.scenario("warm", Settings(workers=1))
            try:
                out["echo"] = bench.measure("echo", server, ECHO, [{}], warm=1)
                out["warm"] = bench.exchange("warm", server, warm_seconds=1, fill=True)
            finally:
                server.stop()
            server = bench.scenario("miss", Settings(workers=1, caches=False))
            try:
                out["miss"] = bench.exchange("miss", server, warm_seconds=1)
            finally:
                server.stop()
            if not pool2:
                raise _Done  # noqa: TRY301 - the remaining scenario is skipped, not an error
            config = write_config(bench.root, bench.idp, Settings(workers=1, caches=False))
            config.write_text(config.read_text().replace("[policy]\n", "[policy]\npool_size = 2\n"))
            server = start_server(bench.root, config, bench.server_cpus)
            try:
                out["pool2"] = bench.exchange("pool2", server, warm_seconds=1)
            finally:
                server.stop()
        except _Done:
            pass
        finally:
            bench.idp.close()
        echo = out["echo"].throughput
        for key, run in out.items():
            print(
                f"RESULT {key} {run.throughput:.0f}/s cpu {run.cpu_us_per_request:.0f}us "
                f"ratio {run.throughput / echo:.3f}"
            )


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(float(args[0]) if args else 3.0, pool2="--no-pool2" not in sys.argv)
