"""The label-budget chapters (04 RAF-DB, 05 AffectNet): method comparisons at
each budget, a second test set, and a page's runs beside the published table."""
from __future__ import annotations
