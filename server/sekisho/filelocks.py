"""Exclusive advisory locks (flock) on an open file, waited for until a deadline: the keystore's
lock file (signing/filestore.py) and the revocation audit log (status/audit.py). Polled, not
blocking, so a command gives up with its own error instead of hanging behind a stuck process."""

import errno
import fcntl
import time

POLL_SECONDS = 0.05


def flock_before(fd: int, deadline: float) -> bool:
    """Take the exclusive lock of `fd`, trying until `deadline` (time.monotonic()); False once
    it has passed with the lock still held elsewhere. Raises: OSError other than "held"."""
    while not try_flock(fd):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True


def try_flock(fd: int) -> bool:
    """Take the exclusive lock of `fd` if free. Raises: OSError other than "held by another"."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise
        return False
    return True
