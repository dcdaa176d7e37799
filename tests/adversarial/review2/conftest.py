"""Fixtures of the adversarial suite that the review's tests reuse."""

from tests.adversarial.test_agent_peer import append_only  # noqa: F401
from tests.adversarial.test_forged_backups import forged  # noqa: F401
