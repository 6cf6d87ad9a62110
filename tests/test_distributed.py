"""A batch on a Dask distributed cluster (LocalCluster on loopback) gives the local outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from nmfsep.batch import plan_jobs, run_jobs
from nmfsep.inputs import expand_inputs
from nmfsep.model import NMFModel
from nmfsep.options import SeparateOptions
from nmfsep.separation import train_model
from nmfsep.spectral import STFTConfig

distributed = pytest.importorskip("distributed")

SR = 8000


def _signal(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    tone = sum(np.sin(2 * np.pi * h * 180 * t) / h for h in range(1, 5))
    return (0.1 * tone + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    d = tmp_path_factory.mktemp("dist")
    model: NMFModel = train_model(
        {"tone": [_signal(2.0, 1)], "noise": [np.random.default_rng(2).standard_normal(16000)]},
        sr=SR,
        n_components=4,
        stft_config=STFTConfig(n_fft=256, hop_length=64),
        max_iter=30,
    )
    model.save(d / "model.npz")
    inputs = []
    for i in range(3):
        path = d / "in" / f"mix{i}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, _signal(1.5, 10 + i), SR, subtype="PCM_16")
        inputs.append(str(path))
    (d / "in" / "broken.wav").write_bytes(b"RIFF not really a wave file")
    inputs.append(str(d / "in" / "broken.wav"))
    return d, d / "model.npz", inputs


def _run(d: Path, model: Path, inputs: list[str], out: str, **kw: object) -> list:
    jobs, records = plan_jobs(
        expand_inputs(inputs),
        sources=["tone", "noise"],
        outdir=str(d / out),
        template="{track}/{source}.{ext}",
        ext="wav",
        options=SeparateOptions(max_iter=20, block_seconds=0.5),
        model=str(model),
    )
    assert not records
    return run_jobs(jobs, **kw)  # type: ignore[arg-type]


def test_dask_cluster_gives_the_local_outputs(batch: tuple[Path, Path, list[str]]) -> None:
    d, model, inputs = batch
    local = _run(d, model, inputs, "local", n_jobs=1)
    with (
        distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=False,
            protocol="tcp",
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
    ):
        remote = _run(d, model, inputs, "remote", scheduler=cluster.scheduler_address)
    assert [r.status for r in remote] == ["ok", "ok", "ok", "error"]
    for a, b in zip(local, remote, strict=True):
        assert a.input == b.input and a.status == b.status
        assert a.error == b.error  # a failing file is reported the same way
        for source, path in a.outputs.items():
            other = b.outputs[source]
            assert "remote" in other
            x, _ = sf.read(path, dtype="float32")
            y, _ = sf.read(other, dtype="float32")
            np.testing.assert_allclose(x, y, atol=1e-6)


@pytest.mark.parametrize("address", ["garbage", "tcp://"])
def test_a_malformed_scheduler_address_is_named(
    batch: tuple[Path, Path, list[str]], address: str
) -> None:
    from nmfsep.errors import NmfsepError

    d, model, inputs = batch
    with pytest.raises(NmfsepError, match=r"is not a scheduler address like tcp://host:8786"):
        _run(d, model, inputs[:1], "bad", scheduler=address)
    assert not (d / "bad").exists()
