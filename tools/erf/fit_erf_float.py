#!/usr/bin/env python3
"""The coefficients of the CPU backend's float erf (dev.tandem.runtime.cpu.FloatErf), and their measured error.

erf(a) for a = |x| is one of two polynomials, chosen by a, with every coefficient a float:
    a < 1           a · P(a²)          P of degree 6 (7 coefficients)
    1 ≤ a < 3.92    Q(a − 2.46)        Q of degree 14 (15 coefficients), capped at 1
    a ≥ 3.92        1                  (1 − erf(3.92) = 2.9e-8, under half a float ulp below 1)
and erf(−a) = −erf(a). No exp, so a Vector API kernel evaluates it with fused multiply-adds alone and gives
the scalar twin's bits (the Vector API's lanewise EXP may round differently from Math.exp, and differently
when compiled than when interpreted).

Each polynomial is a least-squares fit at 600 to 800 Chebyshev nodes of its interval (which is close to the
minimax fit) against mpmath's erf at 40 digits, weighted for absolute error; the coefficients are rounded to
float one at a time, lowest degree first, the rest refitted after each rounding so that they absorb it.

Evaluated in float with fused multiply-adds (Horner), as the kernels do, over every float in [0, 4.5) (a
one-off C++ run with fmaf against the double erf of libm): max |erf_float(x) − erf(x)| = 7.9e-8, at x = 0.98533,
where a float ulp is 6e-8. FloatErfTest holds it under 1e-7 on a dense grid against dev.tandem.runtime.Erf. The
Eigen/XLA rational approximations (x·P(x²)/Q(x²)) measure 3.3e-7 (clamped at ±4, 7/5 terms) and 4e-7 (9/12
degrees) the same way: their division and long polynomials lose several ulps near 1 in float.

    python3 tools/erf/fit_erf_float.py    # prints the coefficients (needs numpy and mpmath)
"""
import mpmath as mp
import numpy as np

mp.mp.dps = 40
SPLIT, CENTRE, CUT = 1.0, float(np.float32(2.46)), float(np.float32(3.92))


def f32(v):
    return float(np.float32(v))


def chebyshev_nodes(a, b, m):
    return [(a + b) / 2 + (b - a) / 2 * np.cos(np.pi * (i + 0.5) / m) for i in range(m)]


def fit(xs, basis, target, weights, n):
    """Least squares over basis(x, k), k < n, with the coefficients rounded to float one at a time."""
    a = np.array([[basis(x, k) for k in range(n)] for x in xs])
    y = np.array(target)
    w = np.array(weights)
    fixed = []
    for k in range(n):
        rest = y - (a[:, :k] @ np.array(fixed) if k else 0)
        c, *_ = np.linalg.lstsq(a[:, k:] * w[:, None], rest * w, rcond=None)
        fixed.append(f32(c[0]))
    return fixed


def coefficients():
    xs = chebyshev_nodes(1e-6, SPLIT, 600)  # erf(a)/a = P(a²); weight a makes the error absolute in erf
    p = fit(xs, lambda x, k: (x * x) ** k, [float(mp.erf(x)) / x for x in xs], xs, 7)
    xs = chebyshev_nodes(SPLIT, CUT, 800)
    q = fit(xs, lambda x, k: (x - CENTRE) ** k, [float(mp.erf(x)) for x in xs], [1.0] * len(xs), 15)
    return p, q


def main():
    p, q = coefficients()
    print("P, in a² for a < 1, from degree 0 up:")
    print("    " + ", ".join(str(np.float32(c)) + "f" for c in p))
    print("Q, in a − 2.46 for 1 ≤ a < 3.92, from degree 0 up:")
    print("    " + ", ".join(str(np.float32(c)) + "f" for c in q))


if __name__ == "__main__":
    main()
