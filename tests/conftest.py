"""Shared pytest settings."""


def pytest_configure(config):
    """Register the custom markers."""
    config.addinivalue_line("markers", "slow: retraining-heavy or large-data tests")
