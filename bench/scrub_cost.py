"""Cost of redaction.scrub_text: adversarial inputs must scale linearly, ordinary text must not get
much dearer (session 9's method, bench/results/redteam_session9.md; session 10 added colon
separators, glued and look-alike schemes). `PYTHONPATH=<other tree>/server` runs another
revision; alternate the two and report medians.

    .venv/bin/python bench/scrub_cost.py [--scaling] [--ordinary] [--calls 20000]
"""

import argparse
import statistics
import time
import timeit

from sekisho import redaction

# Each repeated to the size asked; the scheme pattern alone (no 2,048-character cut).
ADVERSARIAL = {
    "backslashes": "\\",
    "tab-escapes": "\\t",
    "colons": ":",
    "bearer-colon-runs": "Bearer" + ":" * 64 + "!",
    "glued-bearers": "xBearer",
    "bearer-no-separator": "Bearer",
    "cyrillic-b-runs": "\u0412",
    "look-alike-scheme-then-bang": "\u0412\u0435\u0430rer:!",
    "zero-width": "\u200b",
    "percent-20": "%20",
    "quote-comma": "',",
    "plus": "+",
    "newline-bearer-bang": "\\nBearer!",
    "token-colon-space": "token: ",
    "basic-glued": "aBasic",
}
ORDINARY = {
    "error-detail-with-token": "token verification failed for issuer https://idp.example.com: "
    "the key with kid abc123 is not in the issuer's JWKS (refetched 3 s ago)",
    "reason": "granted by group membership",
    "url": "https://crm-as.example.com/mcp",
    "kid-error": "cannot read private key for kid abc: Permission denied",
    "2000-chars-no-scheme": ("lorem ipsum dolor sit amet, consectetur adipiscing elit " * 40)[
        :2000
    ],
}


def scaling() -> None:
    for name, unit in ADVERSARIAL.items():
        times = []
        for size in (256 << 10, 512 << 10, 1 << 20, 2 << 20):
            text = (unit * (size // len(unit) + 1))[:size]
            start = time.process_time()
            redaction._AUTH_SCHEME.sub(redaction._scheme_redacted, text)
            times.append(time.process_time() - start)
        ms = "/".join(f"{t * 1000:.0f}" for t in times)
        ratio = times[-1] / times[0] if times[0] else float("nan")
        print(f"{name:30s} 256K/512K/1M/2M: {ms} ms  (2M/256K = {ratio:.1f}, linear = 8)")


def ordinary(calls: int) -> None:
    for name, text in ORDINARY.items():
        runs = [
            timeit.timeit(lambda text=text: redaction.scrub_text(text), number=calls)
            for _ in range(5)
        ]
        print(f"{name:30s} {statistics.median(runs) / calls * 1e6:.2f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scaling", action="store_true")
    parser.add_argument("--ordinary", action="store_true")
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    if not hasattr(redaction, "_scheme_redacted_text"):
        # Either revision: session 10 names its replacement; before, the pattern had one group.
        scheme = getattr(redaction, "_scheme_redacted", None)
        redaction._scheme_redacted_text = scheme or (lambda m: f"{m.group(1)} [redacted]")  # type: ignore[attr-defined]
    if args.scaling or not args.ordinary:
        scaling()
    if args.ordinary or not args.scaling:
        ordinary(args.calls)


if __name__ == "__main__":
    main()
