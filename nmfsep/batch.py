"""Many inputs to many outputs: output paths, planning, and running jobs in a pool or on Dask.

A *job* is one input file and the output file of each of its sources. Jobs are planned in the
parent process (so that finished inputs are skipped before any work starts and output paths
never collide), then run one per worker process, each worker limited to one BLAS thread so that
``--jobs N`` never oversubscribes the machine. Each job ends as one :class:`JobRecord`.
"""

from __future__ import annotations

import os
import string
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nmfsep import defaults
from nmfsep.errors import NmfsepError, ParameterError
from nmfsep.inputs import InputItem
from nmfsep.options import ClusterOptions, SeparateOptions

__all__ = [
    "Job",
    "JobRecord",
    "check_template",
    "output_paths",
    "output_subtype",
    "plan_jobs",
    "run_job",
    "run_jobs",
    "summarize",
]

DEFAULT_TEMPLATE = defaults.TEMPLATE
TEMPLATE_FIELDS = ("track", "source", "ext", "dir")
OUTPUT_FORMATS = ("wav", "flac")


@dataclass(frozen=True)
class Job:
    """What to do with one input file.

    Attributes
    ----------
    input : str
        Audio file to separate.
    outputs : dict of str to str
        Output path of each source, in the order of the sources.
    options : SeparateOptions or ClusterOptions
        ``separate`` or ``cluster`` (the task follows the type).
    model : str or None
        Model file for ``separate`` (None: the built-in default model).
    plot : str or None
        PNG to draw the separation into.
    save_model : str or None
        Where ``cluster`` writes its clustered model.
    mono : bool
        Down-mix the input first.
    threads : int
        Blocks separated in parallel within this job.
    """

    input: str
    outputs: dict[str, str]
    options: SeparateOptions | ClusterOptions
    model: str | None = None
    plot: str | None = None
    save_model: str | None = None
    mono: bool = False
    threads: int = 1

    @property
    def task(self) -> str:
        return "cluster" if isinstance(self.options, ClusterOptions) else "separate"


@dataclass
class JobRecord:
    """What happened to one input (one entry of ``--json``'s ``files``).

    ``status`` is ``"ok"``, ``"skipped"`` (outputs exist) or ``"error"`` (``error`` says why, on
    one line).
    """

    input: str
    status: str
    outputs: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    duration: float = 0.0
    seconds: float = 0.0
    settings: dict[str, Any] | None = None
    plot: str | None = None
    model: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (unset optional fields left out)."""
        d = asdict(self)
        return {k: v for k, v in d.items() if v is not None or k == "error"}


def check_template(template: str) -> None:
    """Refuse output templates that are malformed or cannot name one file per source."""
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise ParameterError(f"bad --filename template {template!r}: {exc}") from None
    unknown = fields - set(TEMPLATE_FIELDS)
    if unknown:
        raise ParameterError(
            f"bad --filename template {template!r}: unknown field(s) "
            f"{', '.join(sorted(unknown))}; use {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}"
        )
    if "source" not in fields:
        raise ParameterError(f"--filename template {template!r} must contain {{source}}")
    if os.path.isabs(template) or template.startswith("~"):
        raise ParameterError(f"--filename template {template!r} must be a relative path")
    if ".." in Path(template).parts:
        raise ParameterError(f"--filename template {template!r} must not contain '..'")


def output_paths(
    outdir: str | os.PathLike[str],
    template: str,
    *,
    track: str,
    input_path: str,
    sources: Sequence[str],
    ext: str,
) -> dict[str, str]:
    """The output file of each source, refusing any path that would leave ``outdir``.

    Raises
    ------
    ParameterError
        When the formatted path is absolute or escapes ``outdir`` (``..``).
    """
    root = Path(os.path.abspath(outdir))
    parent = Path(os.path.abspath(input_path)).parent.name
    paths: dict[str, str] = {}
    for source in sources:
        rel = template.format(track=track, source=source, ext=ext, dir=parent)
        target = Path(os.path.normpath(root / rel))
        if os.path.isabs(rel) or ".." in Path(rel).parts or not target.is_relative_to(root):
            raise ParameterError(f"output path {rel!r} would leave the output directory {outdir}")
        # Paths are reported as the user wrote OUTDIR (relative stays relative).
        paths[source] = os.path.normpath(os.path.join(outdir, rel))
    return paths


def plan_jobs(
    inputs: Sequence[InputItem],
    *,
    sources: Sequence[str],
    outdir: str,
    template: str,
    ext: str,
    options: SeparateOptions | ClusterOptions,
    model: str | None = None,
    overwrite: bool = False,
    plot: bool = False,
    save_model: str | None = None,
    mono: bool = False,
) -> tuple[list[Job], list[JobRecord]]:
    """Plan one job per input, and the records of inputs that need no work.

    Returns
    -------
    jobs : list of Job
        Inputs to process.
    records : list of JobRecord
        Inputs already finished (``status: "skipped"``), or refused before any work
        (``status: "error"``: missing file, output collision).
    """
    check_template(template)
    sample = template.format(track="track", source="source", ext=ext, dir="dir")
    if Path(sample).suffix.lower().lstrip(".") not in OUTPUT_FORMATS:
        raise ParameterError(
            f"--filename template {template!r} must end with .{{ext}} "
            f"(or .{' or .'.join(OUTPUT_FORMATS)})"
        )
    jobs: list[Job] = []
    records: list[JobRecord] = []
    claimed: dict[str, str] = {}
    for item in inputs:
        if item.error:
            records.append(JobRecord(item.path, "error", error=item.error))
            continue
        try:
            outputs = output_paths(
                outdir, template, track=item.track, input_path=item.path, sources=sources, ext=ext
            )
        except ParameterError as exc:
            records.append(JobRecord(item.path, "error", error=exc.message))
            continue
        clash = next((claimed[p] for p in outputs.values() if p in claimed), None)
        if clash is not None:
            records.append(
                JobRecord(
                    item.path,
                    "error",
                    error=f"its outputs would overwrite those of {clash}; "
                    'use --filename "{dir}/{track}/{source}.{ext}"',
                )
            )
            continue
        if any(os.path.realpath(p) == os.path.realpath(item.path) for p in outputs.values()):
            records.append(
                JobRecord(item.path, "error", error="an output path is the input itself")
            )
            continue
        for p in outputs.values():
            claimed[p] = item.path
        if not overwrite:
            existing = [p for p in outputs.values() if os.path.lexists(p)]
            if existing and len(existing) == len(outputs) and all(map(os.path.isfile, existing)):
                records.append(JobRecord(item.path, "skipped", outputs=outputs))
                continue
            if existing:  # another run's (other model, other sources): never clobbered
                records.append(
                    JobRecord(
                        item.path,
                        "error",
                        error=f"output {existing[0]} exists but not all of its outputs do; "
                        "use --overwrite to redo it",
                    )
                )
                continue
        first = Path(next(iter(outputs.values())))
        jobs.append(
            Job(
                item.path,
                outputs,
                options,
                model=model,
                plot=str(first.parent / "separation.png") if plot else None,
                save_model=save_model,
                mono=mono,
            )
        )
    return jobs, records


# --------------------------------------------------------------------------- running jobs

_MODEL_CACHE: dict[str | None, Any] = {}


def _load_model_cached(path: str | None) -> Any:
    from nmfsep.model import default_model, load_model

    if path not in _MODEL_CACHE:
        _MODEL_CACHE[path] = default_model() if path is None else load_model(path)
    return _MODEL_CACHE[path]


def run_job(job: Job) -> JobRecord:
    """Run one job; never raises for a bad input — the error is in the returned record."""
    t0 = time.perf_counter()
    try:
        record = _run_job(job)
    except NmfsepError as exc:
        # The error names the input; name another file (an output, ...) in the message.
        about_input = exc.path is None or os.path.abspath(exc.path) == os.path.abspath(job.input)
        record = JobRecord(job.input, "error", error=exc.message if about_input else str(exc))
    except MemoryError:
        record = JobRecord(job.input, "error", error="out of memory")
    except Exception as exc:  # a bug, not a bad input: still one line per file, batch goes on
        where = traceback.extract_tb(exc.__traceback__)[-1]
        record = JobRecord(
            job.input,
            "error",
            error=f"internal error: {type(exc).__name__}: {exc} "
            f"({Path(where.filename).name}:{where.lineno}); please report it",
        )
    if record.error is not None:  # one line, whatever the exception said
        record.error = " ".join(str(record.error).split())
    record.seconds = round(time.perf_counter() - t0, 3)
    return record


def _subtypes(job: Job) -> dict[str, str]:
    from nmfsep.audio import audio_info

    info = audio_info(job.input)
    return {
        name: output_subtype(info.subtype, Path(path).suffix.lower().lstrip("."))
        for name, path in job.outputs.items()
    }


def _run_job(job: Job) -> JobRecord:
    from nmfsep import streaming

    subtypes = _subtypes(job)
    if job.plot is not None:
        return _run_job_in_memory(job, subtypes)
    model = None
    if isinstance(job.options, ClusterOptions):
        result, model = streaming.cluster_file(
            job.input,
            job.outputs,
            options=job.options,
            mono=job.mono,
            subtypes=subtypes,
            n_threads=job.threads,
        )
    else:
        result = streaming.separate_file(
            job.input,
            job.outputs,
            _load_model_cached(job.model),
            options=job.options,
            mono=job.mono,
            subtypes=subtypes,
            n_threads=job.threads,
        )
    if model is not None and job.save_model is not None:
        model.save(job.save_model)
    return JobRecord(
        job.input,
        "ok",
        outputs=dict(job.outputs),
        duration=round(result.n_samples / result.sr, 3),
        settings=result.settings,
        model=job.save_model if model is not None else None,
    )


def _run_job_in_memory(job: Job, subtypes: dict[str, str]) -> JobRecord:
    """``--plot``: the whole file in memory (the picture needs every frame), same engine."""
    from nmfsep.audio import load_audio, write_audio
    from nmfsep.plotting import plot_model, plot_separation
    from nmfsep.separation import cluster_separate, separate

    assert job.plot is not None
    y, sr = load_audio(job.input, mono=job.mono)
    model = None
    if isinstance(job.options, ClusterOptions):
        result, model = cluster_separate(y, sr, options=job.options)
    else:
        result = separate(y, sr, _load_model_cached(job.model), options=job.options)
    for name, path in job.outputs.items():
        write_audio(path, result.sources[name], sr, subtype=subtypes[name])
    if model is not None and job.save_model is not None:
        model.save(job.save_model)
    plot_separation(y, sr, result, job.plot, title=Path(job.input).name)
    if model is not None:  # the learned bases, one colour per cluster
        plot_model(model, Path(job.plot).with_name("bases.png"))
    return JobRecord(
        job.input,
        "ok",
        outputs=dict(job.outputs),
        duration=round(y.shape[1] / sr, 3),
        settings=result.settings,
        plot=job.plot,
        model=job.save_model if model is not None else None,
    )


def output_subtype(input_subtype: str, ext: str) -> str:
    """Sample format of an output: the input's where the output format has it (so a 16-bit
    input gives 16-bit outputs), else the nearest lossless one."""
    if ext == "flac":
        return "PCM_24" if input_subtype in ("PCM_24", "PCM_32", "FLOAT", "DOUBLE") else "PCM_16"
    if input_subtype in ("PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"):
        return input_subtype
    return "FLOAT"


def _init_worker() -> None:
    # One BLAS thread per worker: N processes on N cores, no oversubscription.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    # The parent handles Ctrl-C: workers must not print KeyboardInterrupt tracebacks.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_jobs(
    jobs: Sequence[Job],
    *,
    n_jobs: int = 1,
    scheduler: str | None = None,
    on_done: Callable[[JobRecord], None] | None = None,
) -> list[JobRecord]:
    """Run jobs in this process (``n_jobs=1`` or one job), a local process pool, or on Dask.

    Parameters
    ----------
    jobs : sequence of Job
    n_jobs : int
        Worker processes for a local run. One job alone runs in this process with ``n_jobs``
        block threads instead.
    scheduler : str, optional
        Address of a Dask distributed scheduler (``tcp://host:8786``); needs the
        ``distributed`` extra.
    on_done : callable, optional
        Called with each record as soon as its job finishes (for progress reports).

    Returns
    -------
    list of JobRecord
        One record per job, in the order of ``jobs``.
    """
    if not jobs:
        return []
    results: dict[int, JobRecord] = {}

    def done(i: int, record: JobRecord) -> None:
        results[i] = record
        if on_done is not None:
            on_done(record)

    if scheduler is not None:
        for i, record in _run_distributed(jobs, scheduler):
            done(i, record)
    elif n_jobs <= 1 or len(jobs) == 1:
        from dataclasses import replace

        for i, job in enumerate(jobs):
            done(i, run_job(replace(job, threads=max(1, n_jobs))))
    else:
        for i, record in _run_pool(jobs, min(n_jobs, len(jobs))):
            done(i, record)
    return [results[i] for i in range(len(jobs))]


def _run_pool(jobs: Sequence[Job], n_jobs: int) -> Iterator[tuple[int, JobRecord]]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # "spawn" keeps workers independent of the parent's threads and BLAS state.
    context = mp.get_context("spawn")
    pool = ProcessPoolExecutor(n_jobs, mp_context=context, initializer=_init_worker)
    try:
        futures = {pool.submit(run_job, job): i for i, job in enumerate(jobs)}
        for future in as_completed(futures):
            yield futures[future], future.result()
    except BaseException:
        # Ctrl-C (or any error): stop now. Workers ignore SIGINT, and shutting the pool down
        # normally would wait for the running jobs to finish: terminate them instead. A killed
        # worker leaves at most a hidden temporary file, removed by the next run.
        _terminate_pool(pool)
        raise
    pool.shutdown(wait=True)


def _terminate_pool(pool: Any) -> None:
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)


def _run_distributed(jobs: Sequence[Job], address: str) -> Iterator[tuple[int, JobRecord]]:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise NmfsepError(
            "--scheduler needs the 'distributed' extra: pip install 'nmfsep[distributed]'"
        ) from None
    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise NmfsepError(f"cannot connect to the Dask scheduler at {address}: {exc}") from None
    with client:
        futures = client.map(run_job, list(jobs), pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        for future in as_completed(futures):
            yield index[future.key], future.result()


def summarize(records: Sequence[JobRecord], *, seconds: float) -> dict[str, Any]:
    """Counts of a batch: total, ok, skipped, failed, wall seconds, audio seconds."""
    return {
        "total": len(records),
        "ok": sum(r.status == "ok" for r in records),
        "skipped": sum(r.status == "skipped" for r in records),
        "failed": sum(r.status == "error" for r in records),
        "seconds": round(seconds, 3),
        "audio_seconds": round(sum(r.duration for r in records), 3),
    }
