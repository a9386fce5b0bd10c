"""Local emulators of the outside APIs, for end-to-end tests, benchmarks and the demo."""
