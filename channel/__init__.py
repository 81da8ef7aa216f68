"""Pure radio functions: path loss, shadowing, fading, SNR and rate. No SimPy, no torch.

Every function is vectorized over links (NumPy arrays) and carries units in its argument names.

Modules: seed (the seed papers' h0 d^-gamma channel, SNR, Shannon), pathloss (free space, dB <-> linear),
v2v (TR 37.885), v2i (TR 36.885 macro, TR 38.901 UMi), conditions (LOS states, spatially consistent),
shadowing (correlated log-normal), fading (Rayleigh / Rician, ergodic rate), rate (Shannon, CQI table), per
(each MCS's BLER, a waterfall fit), interference (SINR), buildings (polygons blocking links), link (one
link's SNR and rate, downlink power per share), models (registry: `models.link_gain_linear`).
"""
