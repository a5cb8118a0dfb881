"""Pure-Python planning layer: settings schema and AWS facts. Imports neither pulumi nor boto3."""
