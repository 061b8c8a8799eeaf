"""Strategy API and example strategies. Strategies emit intents; they never touch a venue."""
