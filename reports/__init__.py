"""Reports over the payouts database: one SLA by the official working-day calendar, one funnel, the
monthly report for leaders (HTML from a template, .xlsx), and the charts the notebooks and the report draw.

The web console, the CLI and the notebooks call this package; it knows no HTTP and the money flow
(`payouts/`) knows nothing of it.
"""
