"""Figures the chapters draw from runs and models: each a function that takes
tables or records and an axes (or makes its figure), so that a chapter's cell
is the call, and a change of style is made once."""
from __future__ import annotations
