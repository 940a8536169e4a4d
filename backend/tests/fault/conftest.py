"""The fault tests' fixtures live with the process helpers they use."""

from tests.processes import private_cluster

__all__ = ["private_cluster"]
