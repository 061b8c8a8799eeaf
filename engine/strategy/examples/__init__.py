"""Example strategies: a momentum taker and a maker-style quoter."""
