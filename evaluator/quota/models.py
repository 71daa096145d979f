"""Quota tables (filled in by the quota work)."""
from __future__ import annotations
