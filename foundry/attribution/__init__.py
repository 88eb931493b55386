"""Per-output influence attribution: indexes over training data, and the policy that blends them into royalties."""
