"""Payouts: offers from a match run, review, SMS links, one-click confirmation, maker-checker batches,
bank files, reconciliation and the hash-chained audit log (DESIGN.md, "Offers, confirmations and payouts").
"""
