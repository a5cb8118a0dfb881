"""The inbox: receipts, the reference consumer and the dead-letter redrive (Lambda code, and the
engine `scripts/redrive.py` runs)."""
