"""The IMEI registry: parsing, models, imports, policy profiles, the decision function."""
