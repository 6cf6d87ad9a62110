"""Many inputs to many outputs: input expansion, output paths, and running jobs in a pool.

A *job* is one input file and the output file of each of its sources. Jobs are planned in the
parent process (so that finished inputs are skipped before any work starts and output paths
never collide), then run one per worker process, each worker limited to one BLAS thread so that
``--jobs N`` never oversubscribes the machine.
"""

from __future__ import annotations

import glob
import os
import string
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nmfsep.errors import NmfsepError, ParameterError

DEFAULT_TEMPLATE = "{track}/{source}.{ext}"
TEMPLATE_FIELDS = ("track", "source", "ext", "dir")
OUTPUT_FORMATS = ("wav", "flac")
_GLOB_CHARS = set("*?[")


@dataclass
class InputItem:
    """One input as the user named it, expanded: a file path, or the error that stops it."""

    path: str
    track: str
    error: str | None = None


@dataclass
class Job:
    """What to do with one input file.

    Attributes
    ----------
    input : str
        Audio file to separate.
    outputs : dict of str to str
        Output path of each source, in the order of the sources.
    task : str
        ``"separate"`` or ``"cluster"``.
    options : dict
        Keyword arguments of the pipeline function (JSON-able).
    model : str or None
        Model file for ``separate`` (None: the built-in default model).
    extra : dict
        Extra work: ``{"plot": path}``, ``{"save_model": path}``.
    """

    input: str
    outputs: dict[str, str]
    task: str
    options: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    mono: bool = False


def expand_inputs(items: Iterable[str], *, recursive: bool = False) -> list[InputItem]:
    """Turn files, directories and glob patterns into a list of input files.

    Parameters
    ----------
    items : iterable of str
        What the user named. A directory gives its audio files (sorted; with ``recursive``
        also those of its subdirectories); a name that does not exist but contains ``* ? [``
        is a glob pattern. Anything else that does not exist is kept with an error, so that
        one bad name does not stop the batch.
    recursive : bool
        Descend into subdirectories of directory inputs (and ``**`` in globs).

    Returns
    -------
    list of InputItem
        In the order given; duplicates (the same resolved file twice) are dropped.
    """
    from nmfsep.audio import find_audio_files

    out: list[InputItem] = []
    seen: set[str] = set()

    def add(path: Path, track: str) -> None:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            out.append(InputItem(path=str(path), track=track))

    for item in items:
        path = Path(item)
        if path.is_dir():
            files = find_audio_files(path, recursive=recursive)
            if not files:
                out.append(
                    InputItem(path=item, track=path.name, error="no audio files in directory")
                )
            for f in files:
                rel = f.relative_to(path).with_suffix("")
                add(f, rel.as_posix())
        elif path.exists():
            add(path, path.stem)
        elif not _GLOB_CHARS & set(item):
            out.append(InputItem(path=item, track=path.stem, error="no such file"))
        else:
            matches = sorted(glob.glob(item, recursive=recursive))
            files = [Path(m) for m in matches if Path(m).is_file()]
            if not files:
                out.append(InputItem(path=item, track=path.stem, error="pattern matches no file"))
            for f in files:
                add(f, f.stem)
    return out


def read_file_list(source: str, stdin: Iterable[str] | None = None) -> list[str]:
    """Read input names, one per line (``-``: standard input); blank and ``#`` lines skipped."""
    import sys

    if source == "-":
        lines: Iterable[str] = stdin if stdin is not None else sys.stdin
    else:
        try:
            with open(source, encoding="utf-8") as fh:
                lines = fh.read().splitlines()
        except OSError as exc:
            raise ParameterError(f"cannot read file list: {exc.strerror}", path=source) from None
        except UnicodeDecodeError:
            raise ParameterError("file list is not UTF-8 text", path=source) from None
    return [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]


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
    task: str,
    options: dict[str, Any],
    model: str | None = None,
    overwrite: bool = False,
    plot: bool = False,
    save_model: str | None = None,
    mono: bool = False,
) -> tuple[list[Job], list[dict[str, Any]]]:
    """Plan one job per input, and the records of inputs that need no work.

    Returns
    -------
    jobs : list of Job
        Inputs to process.
    records : list of dict
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
    records: list[dict[str, Any]] = []
    claimed: dict[str, str] = {}
    for item in inputs:
        if item.error:
            records.append(_record(item.path, "error", error=item.error))
            continue
        try:
            outputs = output_paths(
                outdir, template, track=item.track, input_path=item.path, sources=sources, ext=ext
            )
        except ParameterError as exc:
            records.append(_record(item.path, "error", error=exc.message))
            continue
        clash = next((claimed[p] for p in outputs.values() if p in claimed), None)
        if clash is not None:
            records.append(
                _record(
                    item.path,
                    "error",
                    error=f"its outputs would overwrite those of {clash}; "
                    'use --filename "{dir}/{track}/{source}.{ext}"',
                )
            )
            continue
        if any(os.path.realpath(p) == os.path.realpath(item.path) for p in outputs.values()):
            records.append(_record(item.path, "error", error="an output path is the input itself"))
            continue
        for p in outputs.values():
            claimed[p] = item.path
        if not overwrite:
            existing = [p for p in outputs.values() if os.path.lexists(p)]
            if existing and len(existing) == len(outputs) and all(map(os.path.isfile, existing)):
                records.append(_record(item.path, "skipped", outputs=outputs))
                continue
            if existing:  # another run's (other model, other sources): never clobbered
                records.append(
                    _record(
                        item.path,
                        "error",
                        error=f"output {existing[0]} exists but not all of its outputs do; "
                        "use --overwrite to redo it",
                    )
                )
                continue
        extra: dict[str, str] = {}
        first = Path(next(iter(outputs.values())))
        if plot:
            extra["plot"] = str(first.parent / "separation.png")
        if save_model:
            extra["save_model"] = save_model
        jobs.append(Job(item.path, outputs, task, dict(options), model, extra, mono))
    return jobs, records


def _record(input_path: str, status: str, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"input": input_path, "status": status, "outputs": {}, "error": None}
    record.update(fields)
    return record


# --------------------------------------------------------------------------- running jobs

_MODEL_CACHE: dict[str | None, Any] = {}


def _load_model_cached(path: str | None) -> Any:
    from nmfsep.model import default_model, load_model

    if path not in _MODEL_CACHE:
        _MODEL_CACHE[path] = default_model() if path is None else load_model(path)
    return _MODEL_CACHE[path]


def run_job(job: Job) -> dict[str, Any]:
    """Run one job; never raises for a bad input — the error is in the returned record.

    Returns
    -------
    dict
        ``input``, ``status`` (``"ok"`` or ``"error"``), ``outputs`` (source -> path),
        ``error`` (one line or None), ``duration`` (s of audio), ``seconds`` (wall time),
        ``settings`` (what was used).
    """
    t0 = time.perf_counter()
    try:
        record = _run_job(job)
    except NmfsepError as exc:
        # The error names the input; name another file (an output, ...) in the message.
        about_input = exc.path is None or os.path.abspath(exc.path) == os.path.abspath(job.input)
        record = _record(job.input, "error", error=exc.message if about_input else str(exc))
    except MemoryError:
        record = _record(job.input, "error", error="out of memory")
    except Exception as exc:  # a bug, not a bad input: still one line per file, batch goes on
        where = traceback.extract_tb(exc.__traceback__)[-1]
        record = _record(
            job.input,
            "error",
            error=f"internal error: {type(exc).__name__}: {exc} "
            f"({Path(where.filename).name}:{where.lineno}); please report it",
        )
    if record.get("error") is not None:  # one line, whatever the exception said
        record["error"] = " ".join(str(record["error"]).split())
    record["seconds"] = round(time.perf_counter() - t0, 3)
    return record


#: Threads a streamed separation may use (blocks in parallel): 1 in pool and Dask workers,
#: ``n_jobs`` when :func:`run_jobs` runs the jobs in this process.
_BLOCK_THREADS = 1


def _run_job(job: Job) -> dict[str, Any]:
    from nmfsep.audio import audio_info, load_audio, write_audio
    from nmfsep.separation import cluster_separate, separate

    if job.task == "separate" and "plot" not in job.extra:
        # Separation streams block by block (bounded memory, blocks on several threads);
        # a file shorter than a block is one block, the same as whole-file processing.
        from nmfsep import streaming

        model = _load_model_cached(job.model)
        return streaming.run_job(job, model, n_threads=_BLOCK_THREADS)
    info = audio_info(job.input)
    y, sr = load_audio(job.input, mono=job.mono)
    model = None
    if job.task == "separate":
        model = _load_model_cached(job.model)
        options = {k: v for k, v in job.options.items() if k != "block_seconds"}
        result = separate(y, sr, model, **options)
    elif job.task == "cluster":
        result, model = cluster_separate(y, sr, **job.options)
    else:  # pragma: no cover - planned by the CLI
        raise ParameterError(f"unknown task {job.task!r}")
    missing = set(job.outputs) - set(result.sources)
    if missing:
        raise NmfsepError(f"no estimate for source(s) {', '.join(sorted(missing))}")
    for name, path in job.outputs.items():
        ext = Path(path).suffix.lower().lstrip(".")
        write_audio(path, result.sources[name], sr, subtype=output_subtype(info.subtype, ext))
    if "save_model" in job.extra and job.task == "cluster":
        model.save(job.extra["save_model"])
    if "plot" in job.extra:
        from nmfsep.plotting import plot_model, plot_separation

        plot_separation(y, sr, result, job.extra["plot"], title=Path(job.input).name)
        if job.task == "cluster":  # the learned bases, one colour per cluster
            plot_model(model, Path(job.extra["plot"]).with_name("bases.png"))
    return _record(
        job.input,
        "ok",
        outputs=dict(job.outputs),
        duration=round(y.shape[1] / sr, 3),
        settings=result.settings,
        **({"plot": job.extra["plot"]} if "plot" in job.extra else {}),
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
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run jobs in this process (``n_jobs=1``), a local process pool, or on a Dask cluster.

    Parameters
    ----------
    jobs : sequence of Job
    n_jobs : int
        Worker processes for a local run.
    scheduler : str, optional
        Address of a Dask distributed scheduler (``tcp://host:8786``); needs the
        ``distributed`` extra.
    on_done : callable, optional
        Called with each record as soon as its job finishes (for progress reports).

    Returns
    -------
    list of dict
        One record per job, in the order of ``jobs``.
    """
    if not jobs:
        return []
    results: dict[int, dict[str, Any]] = {}

    def done(i: int, record: dict[str, Any]) -> None:
        results[i] = record
        if on_done is not None:
            on_done(record)

    if scheduler is not None:
        for i, record in _run_distributed(jobs, scheduler):
            done(i, record)
    elif n_jobs <= 1 or len(jobs) == 1:
        global _BLOCK_THREADS
        saved, _BLOCK_THREADS = _BLOCK_THREADS, max(1, n_jobs)
        try:
            for i, job in enumerate(jobs):
                done(i, run_job(job))
        finally:
            _BLOCK_THREADS = saved
    else:
        for i, record in _run_pool(jobs, min(n_jobs, len(jobs))):
            done(i, record)
    return [results[i] for i in range(len(jobs))]


def _run_pool(jobs: Sequence[Job], n_jobs: int) -> Iterator[tuple[int, dict[str, Any]]]:
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


def _run_distributed(jobs: Sequence[Job], address: str) -> Iterator[tuple[int, dict[str, Any]]]:
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


def summarize(records: Sequence[dict[str, Any]], *, seconds: float) -> dict[str, Any]:
    """Counts of a batch: total, ok, skipped, failed, wall seconds, audio seconds."""
    return {
        "total": len(records),
        "ok": sum(r["status"] == "ok" for r in records),
        "skipped": sum(r["status"] == "skipped" for r in records),
        "failed": sum(r["status"] == "error" for r in records),
        "seconds": round(seconds, 3),
        "audio_seconds": round(sum(r.get("duration", 0.0) for r in records), 3),
    }


def job_to_dict(job: Job) -> dict[str, Any]:
    """JSON-able form of a job (for logs)."""
    return asdict(job)
