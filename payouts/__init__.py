"""Payouts: offers from a match run, review, SMS links, one-click confirmation, maker-checker batches,
bank files, reconciliation and the hash-chained audit log (docs/contracts.md#offers-confirmations-and-payouts).
"""
