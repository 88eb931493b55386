"""Helpers shared by the test suites: generators of real files, not mocks."""
