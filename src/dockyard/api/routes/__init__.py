"""`/api/v2.0` resources, one module each."""
