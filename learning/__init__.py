"""Models with split points, data sets and partitions, and the numeric steps of FL/SL/SFL.

No SimPy, no network: every function here runs on tensors and can be tested alone.
"""
