"""Data governance: the pseudonymization key behind the `analytics` views, and role privileges."""
