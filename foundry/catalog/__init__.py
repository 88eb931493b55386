"""The catalog: contributors, their licensed assets (content-addressed images) and import batches."""
