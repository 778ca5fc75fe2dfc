"""The reports over the API, for finance and BI tools (scope ``audit:read``).

(contract; implementation to come)
"""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("reports", __name__)
