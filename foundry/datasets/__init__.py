"""Dataset snapshots: immutable, hashed manifests of exactly what a model may learn from."""
