"""The replay's compiled lane: at max speed (and, when paced, for the records already due) C code
does what `ReplayServer._process` does for the common records, on one state object.

- `state`: `LaneState`, every field the C code reads or writes, and `LaneShare`, the one method
  by which the owners of that state (the feed, the market, the derived streams, the matching
  engine) hand their part over before each run. Pure data and protocols: nothing here imports
  the owners, the owners import this.
- `fastlane`: `FastLane`, which fills the state, runs `_speedups.run` on it and reports what the
  run did (`LaneRun`); the server accounts for it (counters, pacing, its time map).
- `compiled`: the compiled module `_speedups` (the run, and the feed's frame batching) when it
  is built, else None.
"""
