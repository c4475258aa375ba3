"""Slow, obvious loop implementations for reading and for testing the fast ops."""
