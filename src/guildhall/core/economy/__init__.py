"""The ledger: balances that change only by atomic updates with a ledger row."""
