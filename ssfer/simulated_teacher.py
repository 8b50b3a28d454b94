"""A stream of teacher outputs for the labs, with no network behind it."""
from __future__ import annotations
