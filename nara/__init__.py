"""nara package."""
