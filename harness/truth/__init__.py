"""Ground truth of a game day: records from parties other than the engine (the simulator, the
replay, the submitters, a wiretap on the bus), and the judge that turns them into SLIs."""
