"""vibetwist's tests; registers a deterministic hypothesis profile."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "vibetwist",
    derandomize=True,
    deadline=None,
    max_examples=int(os.environ.get("VIBETWIST_EXAMPLES", "200")),
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("vibetwist")
