"""Benchmarks of energy_pipeline (`make bench` = `python -m bench`); see bench/__main__.py."""
