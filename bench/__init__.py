"""Benchmark and soak harness: ``make bench`` and ``make soak`` (see README)."""
