"""Royalties: how each charge's contributor pool is divided. Policies are pure functions."""
