"""A clock tests set by hand."""


class FakeClock:
    """Returns `current`; tests move it with `advance`."""

    def __init__(self, current: float = 1_800_000_000.0) -> None:
        self.current = current

    def now(self) -> float:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += seconds
