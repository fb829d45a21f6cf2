"""Hypothesis profiles: `ci` (the default, bounded for `make test`) and `long` (HYPOTHESIS_PROFILE=long
for a deeper local run). No deadline: the shared CI machine's timing is not a property."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "long", max_examples=20_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
