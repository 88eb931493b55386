"""Diffusion training engine: trains text-to-image models only on the examples it is handed.

Free of database and web code on purpose: a worker supplies the examples and the hooks (license
gate, progress, cancel), and the same code runs on a bare GPU box for benchmarks.
"""
