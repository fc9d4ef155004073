"""Fixtures for the quorum tests."""
