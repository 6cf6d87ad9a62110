"""The built-in path's L1 penalty on some bases' activations only (a measurement, not an option).

The engine's ``l1`` is one number for every basis (``nmfsep.nmf.fit_nmf``'s ``l1_H``); this
script runs ``bench/blend_variants.py`` with the penalty of the built-in separation's fit kept
on some rows only (the NMF core already keeps it as one value per row): ``ROWS=speech`` (the
model's 32 speech bases), ``noise`` (its 64 noise bases and the free ones) or ``fixed`` (the
model's 96 bases, not the free ones). Same arguments as ``blend_variants.py``:

    ROWS=speech LIST=1 OMP_NUM_THREADS=1 .venv/bin/python bench/l1_rows.py \\
        nb_n64_bins7_refine_big_blend5_stat7_free3 16 \\
        '{"cluster_blend": 0.5, "per_frame": 1, "sep": {"l1": 0.75, "stationary_blend": 0.7,
        "free_components": 4}, "gate": [0, 5]}'

Only the engine's own fit (with free bases) is changed, not the cluster blend's factorisations.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

N_SPEECH, N_MODEL = 32, 96  # the built-in model's speech bases, and all of its bases


def main() -> None:
    import blend_variants

    import nmfsep.engine as eng
    import nmfsep.nmf as nm

    rows = os.environ.get("ROWS", "speech")
    if rows not in ("speech", "noise", "fixed"):
        raise SystemExit(f"ROWS must be speech, noise or fixed, got {rows!r}")
    active = {"on": False}
    init = nm._Problem.__init__

    def patched_init(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        if active["on"] and self.l1_H:
            lin = np.zeros(self.linH.size)
            sel = {
                "speech": slice(0, N_SPEECH),
                "noise": slice(N_SPEECH, None),
                "fixed": slice(0, N_MODEL),
            }
            lin[sel[rows]] = self.l1_H
            # the H step takes the per-row values; 0 keeps the penalty out of the W step (of
            # the free rows) and of the loss (not computed by the built-in path)
            self.linH, self.l1_H = lin, 0.0

    fit = eng.fit_nmf

    def patched_fit(V: np.ndarray, **kwargs: Any) -> Any:
        active["on"] = not isinstance(kwargs.get("fixed_W"), bool)  # free bases: a row mask
        try:
            return fit(V, **kwargs)
        finally:
            active["on"] = False

    nm._Problem.__init__ = patched_init  # type: ignore[method-assign]
    eng.fit_nmf = patched_fit  # type: ignore[assignment]
    blend_variants.main()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
