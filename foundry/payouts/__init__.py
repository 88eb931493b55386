"""Payout periods, artists' statements and payout batches, all derived from the ledger."""
