"""The double-entry ledger: account names, immutable entries, and the periods they count in.

Royalties post a generation's charge and royalties here and payouts post what a period's close
pays out; both read balances back from here, so neither needs the other.
"""
