"""Point-in-time features and labels for the turnover model."""
