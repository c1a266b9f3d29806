"""The published numbers this project reproduces and compares against, stated once.

Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models" (arXiv 2203.15556): Table 2 (the exponents
a in N_opt ∝ C^a and b in D_opt ∝ C^b of the three approaches), Table 3's model sizes, Gopher's training budget and
the Approach 3 fit (Section 3.3, eq. 10; unrounded values from Besiroglu et al. 2024, arXiv 2404.10102). Kaplan et
al. 2020 (arXiv 2001.08361): N_opt ∝ C^0.73, D_opt ∝ C^0.27 with N counting non-embedding parameters.
"""

from __future__ import annotations

APPROACHES: tuple[str, ...] = ("approach1", "approach2", "approach3")
APPROACH_TITLES = {
    "approach1": "1. minimum over training curves",
    "approach2": "2. IsoFLOP profiles",
    "approach3": "3. parametric loss",
}
# Table 2: per approach, a with its 10th-90th percentile interval, then b with its interval (N = all parameters).
TABLE2 = {
    "approach1": (0.50, (0.488, 0.502), 0.50, (0.501, 0.512)),
    "approach2": (0.49, (0.462, 0.534), 0.51, (0.483, 0.529)),
    "approach3": (0.46, (0.454, 0.455), 0.54, (0.542, 0.543)),
}
# Table A2: (a, b) of Approach 2 on other data sets (N = all parameters).
TABLE_A2 = {"C4": (0.50, 0.50), "GitHub": (0.53, 0.47)}
KAPLAN = (0.73, 0.27)  # Kaplan et al. 2020: (a, b), N = non-embedding parameters
GOPHER_FLOPS = 5.76e23  # Gopher 280B's training budget (Table 3's largest FLOPs row; Section 3.4)
# Table 3's model sizes (parameters), projected to FLOPs and tokens by each approach's laws.
TABLE3_PARAMS: tuple[float, ...] = (400e6, 1e9, 10e9, 67e9, 175e9, 280e9, 520e9, 1e12, 10e12)
# The Approach 3 fit L(N, D) = E + A / N^alpha + B / D^beta (eq. 10 rounds it to 1.69, 406.4, 410.7, 0.34, 0.28).
APPROACH3_FIT = {"E": 1.69337, "A": 406.401, "B": 410.723, "alpha": 0.33917084, "beta": 0.2849083}
# Table A3's Approach 3 column as printed (FLOPs, tokens) for those sizes; 175B's FLOPs are printed 1.26e24, an
# evident typo for 1.26e25 (6 * 175e9 * 12.0e12 = 1.26e25).
TABLE_A3_APPROACH3: tuple[tuple[float, float], ...] = (
    (2.21e19, 9.2e9),
    (1.62e20, 27.1e9),
    (2.46e22, 410.1e9),
    (1.71e24, 4.1e12),
    (1.26e25, 12.0e12),
    (3.52e25, 20.1e12),
    (1.36e26, 43.5e12),
    (5.65e26, 94.1e12),
    (8.55e28, 1425.5e12),
)
