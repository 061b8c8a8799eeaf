"""stormproof engine: the product under test. Imports nothing from replay or harness."""
