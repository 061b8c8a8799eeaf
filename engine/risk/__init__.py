"""Risk service: pre-trade checks, trading state, breakers."""
