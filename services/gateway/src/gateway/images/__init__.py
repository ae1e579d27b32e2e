"""Image admission: fetching image URLs SSRF-safely, normalising bytes, the safety pre-filter."""
