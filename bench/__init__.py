"""Benchmarks that print numbers (not tests): ``python -m bench`` (speed) and ``python -m bench.satellite``
(the SRVAE against bicubic and a CNN on a scene)."""
