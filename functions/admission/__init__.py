"""Queue API Lambda package (standard library + boto3 only; imports nothing of Floodgate's)."""
