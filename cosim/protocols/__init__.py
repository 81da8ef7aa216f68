"""Round timelines on the SimPy clock: who sends what to whom, when."""
