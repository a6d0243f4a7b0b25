"""The live dashboard at `/`: one HTML page, vendored static assets, a few small endpoints."""
