"""The run ledger: one row per run of a scheduled job; duplicates refused, missed slots recorded."""
