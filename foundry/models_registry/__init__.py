"""The model registry: every model the foundry serves, with the lineage that makes it licensed."""
