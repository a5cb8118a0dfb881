"""Pulumi ComponentResources: the only code that declares AWS resources."""
