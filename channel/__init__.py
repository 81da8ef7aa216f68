"""Pure radio functions: path loss, shadowing, fading, SNR and rate. No SimPy, no torch.

Every function is vectorized over links (NumPy arrays) and carries units in its argument names.
"""
