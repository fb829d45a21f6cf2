"""A real argon2id PasswordHasher that records where and how many of its checks run."""

import threading

from argon2 import PasswordHasher


class CountingHasher(PasswordHasher):
    """Counts `verify` calls, notes each one's thread and the most that ran at once."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._running = 0
        self.most_at_once = 0
        self.threads: list[int] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        with self._lock:
            self._running += 1
            self.most_at_once = max(self.most_at_once, self._running)
            self.threads.append(threading.get_ident())
        try:
            return super().verify(hash, password)
        finally:
            with self._lock:
                self._running -= 1
