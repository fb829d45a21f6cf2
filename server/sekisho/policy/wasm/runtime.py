"""The wasmtime engine one policy engine compiles its modules with, and the epoch clock that
bounds every evaluation in time.

Why epochs: wasmtime's epoch interruption makes a guest trap once the engine's epoch passes the
store's deadline. It costs a counter check at loop heads and function entries (fuel metering
would cost an add per instruction), and one ticker thread drives every instance of the process.
"""

import hashlib
import math
import threading

import wasmtime

from sekisho.lru import LruMap

TICK_SECONDS = 0.01
# Instantiation, data loading and metadata probes are not time-limited (~350 years of ticks).
NO_DEADLINE_TICKS = 1 << 40


class EpochTicker:
    """A daemon thread advancing the engine's epoch every TICK_SECONDS until closed."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engine = engine
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sekisho-wasm-epoch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            self._engine.increment_epoch()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)


class WasmRuntime:
    """One wasmtime Engine (thread-safe, shared by every module and instance it compiles)."""

    def __init__(self, cached_modules: int = 4) -> None:
        config = wasmtime.Config()
        config.epoch_interruption = True
        self.engine = wasmtime.Engine(config)
        self._ticker: EpochTicker | None = None
        self._lock = threading.Lock()
        # Compiling machine code takes ~0.3-0.7 s; an edit that is reverted, or several engines
        # of one process (tests) loading the same policy, reuse the module.
        self._modules: LruMap[bytes, wasmtime.Module] = LruMap(cached_modules)

    def compile(self, wasm: bytes) -> wasmtime.Module:
        """Raises: wasmtime.WasmtimeError when the bytes are not a valid module."""
        key = hashlib.sha256(wasm).digest()
        with self._lock:
            module = self._modules.get(key)
        if module is None:
            module = wasmtime.Module(self.engine, wasm)
        with self._lock:  # LruMap is not thread-safe; compiles run in worker threads
            self._modules.put(key, module)
        return module

    def deadline_ticks(self, seconds: float) -> int:
        """Epoch ticks for a time budget, rounded up, plus one: the tick in progress when an
        evaluation starts may end at once."""
        self._ensure_ticking()
        return max(1, math.ceil(seconds / TICK_SECONDS)) + 1

    def _ensure_ticking(self) -> None:
        # Started on first use, in the process that evaluates (workers fork before that).
        if self._ticker is None:
            with self._lock:
                if self._ticker is None:
                    self._ticker = EpochTicker(self.engine)

    def close(self) -> None:
        """Stop the epoch thread."""
        with self._lock:
            ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.close()
