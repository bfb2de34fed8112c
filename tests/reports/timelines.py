"""Hand-made offer timelines (the shape of `reports.timeline.offer_timeline`) for the report tests."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd

from reports import timeline


def hand_timeline(*offers: dict[str, object]) -> pd.DataFrame:
    """A hand-made offer timeline: every stage unset unless given."""
    rows = []
    for n, o in enumerate(offers):
        row: dict[str, object] = {c: pd.NaT for c in timeline.STAMPS}
        row |= {
            "offer_id": n,
            "public_id": f"o{n}",
            "run_id": "r",
            "policy_id": "p",
            "item_id": "i",
            "title": "某政策",
            "department": "某局",
            "confirmation": "required",
            "uscc": f"u{n}",
            "amount": Decimal("100.00"),
            "state": "paid",
        }
        rows.append(row | o)
    df = pd.DataFrame(rows, columns=timeline.TIMELINE_COLUMNS)
    for c in timeline.STAMPS:
        df[c] = pd.to_datetime(df[c], utc=True)
    return df
