"""The ``nmfsep`` command: a thin Typer layer over the library.

Only typer, rich and the standard library are imported at the top, so ``nmfsep --help`` is
instant; numpy, librosa and the pipelines are imported inside the commands.

Exit codes: 0 every input succeeded (or was already done, or is being done by another run),
1 some input failed or a file could not be read or written, 2 usage error (bad option or
argument, refused before any work), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
With ``--json`` a summary is printed on stdout in every case, with ``"status"``: ``"ok"``,
``"failed"`` (some input failed), ``"interrupted"`` or ``"error"`` (nothing was done: the
``"error"`` field says why).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from nmfsep import __version__, defaults, limits
from nmfsep.errors import NmfsepError, ParameterError

app = typer.Typer(
    name="nmfsep",
    help="Separate audio sources with non-negative matrix factorization (NMF).\n\n"
    "Train a model from clean examples (train), separate mixtures with it (separate), "
    "separate without training (cluster), and score the results (evaluate).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

# ----------------------------------------------------------------------------- shared options
# Defined once and reused by every command that takes them.

OutDir = Annotated[
    Path,
    typer.Option("--outdir", "-o", help="Output directory.", show_default=True, readable=False),
]
Template = Annotated[
    str,
    typer.Option(
        "--filename",
        help="Output path template under OUTDIR; fields {track} (input name), {source}, "
        "{ext}, {dir} (input's parent directory name).",
    ),
]
Format = Annotated[
    str | None,
    typer.Option(
        "--format",
        help="Output format: wav, flac, ogg (Vorbis), opus (Ogg Opus; 8/12/16/24/48 kHz only), "
        "mp3 (all written by the installed libsndfile), or same (the input's container and "
        "sample format). Left out, a --filename template with an extension of its own writes "
        f"that format. \\[default: {defaults.FORMAT}]",
        show_default=False,
    ),
]
Subtype = Annotated[
    str | None,
    typer.Option(
        "--subtype",
        help="Sample format of the outputs, a libsndfile subtype: PCM_16, PCM_24, PCM_32, "
        "FLOAT, ... (default: the input's where the format has it, else 16-bit).",
    ),
]
Int16 = Annotated[bool, typer.Option("--int16", help="Same as --subtype PCM_16.")]
Int24 = Annotated[bool, typer.Option("--int24", help="Same as --subtype PCM_24.")]
Float32 = Annotated[bool, typer.Option("--float32", help="Same as --subtype FLOAT.")]
Start = Annotated[
    float,
    typer.Option("--start", help="Separate from this time on (seconds; read by seeking).", min=0),
]
Duration = Annotated[
    float | None,
    typer.Option(
        "--duration",
        help="Separate this many seconds, > 0 (default: to the end); outputs are exactly this "
        "long unless the input ends first.",
        min=0,
    ),
]
ToStdout = Annotated[
    str | None,
    typer.Option(
        "--stdout",
        help="Write this one source to standard output (WAV unless --format; nothing else is "
        "written there, messages go to stderr). One input only; '-' as the input reads stdin.",
    ),
]
StdinName = Annotated[
    str | None,
    typer.Option(
        "--name", help="Track name of standard input ('-') in output paths; default stdin."
    ),
]
Overwrite = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Redo inputs whose outputs exist (default: skip them, so a batch resumes).",
    ),
]
JsonOut = Annotated[
    bool, typer.Option("--json", help="Print one machine-readable JSON summary on stdout.")
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or notices on stderr.")]
Verbose = Annotated[
    bool, typer.Option("--verbose", "-v", help="Also print the settings used for each input.")
]
Jobs = Annotated[
    int | None,
    typer.Option(
        "--jobs", "-j", help="Worker processes (default: number of CPU cores).", min=1, max=256
    ),
]
Recursive = Annotated[
    bool, typer.Option("--recursive", "-r", help="Descend into subdirectories of directory inputs.")
]
FilesFrom = Annotated[
    str | None,
    typer.Option(
        "--files-from",
        help="Read more inputs from this file, one per line ('-': stdin; with -0 separated "
        "by NUL bytes, as find -print0 writes).",
    ),
]
Null = Annotated[
    bool, typer.Option("--null", "-0", help="--files-from names are separated by NUL bytes.")
]
Scheduler = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Run the batch on a Dask distributed scheduler (tcp://host:8786); "
        "needs the 'distributed' extra.",
    ),
]
Seed = Annotated[int, typer.Option("--seed", help="Random seed (same seed, same result).")]
PhaseIters = Annotated[
    int,
    typer.Option(
        "--phase-iters",
        help="MISI phase iterations per block (sources still sum to the mixture; measured: "
        "no SDR gain, see bench/README.md).",
        min=0,
    ),
]
Continuity = Annotated[
    float | None,
    typer.Option(
        "--continuity",
        help="Temporal-continuity penalty on the activations (Virtanen, IEEE TASLP 2007), "
        "scaled to mean the same at any level and length; it holds inside each block "
        f"(--block-seconds). Default: the model's, else {defaults.CONTINUITY:g} (off).",
        show_default=False,
    ),
]
ContinuitySource = Annotated[
    str | None,
    typer.Option(
        "--continuity-source",
        help="Apply --continuity to this source's bases only (e.g. noise); default: all.",
        show_default=False,
    ),
]
_BETA_HELP = "Beta-divergence: a number, or euclidean (2), kl (1), itakura-saito (0)"
Beta = Annotated[
    str | None,
    typer.Option(
        "--beta", help=f"{_BETA_HELP} (default {defaults.BETA:g}, kl).", show_default=False
    ),
]
SeparateBeta = Annotated[
    str | None,
    typer.Option("--beta", help=f"{_BETA_HELP} (default: the model's).", show_default=False),
]
L1 = Annotated[float, typer.Option("--l1", help="L1 (sparsity) penalty on activations.", min=0)]
SeparateL1 = Annotated[
    float | None,
    typer.Option(
        "--l1",
        help=f"L1 (sparsity) penalty on activations (default {defaults.SEPARATE_L1:g}; "
        f"{defaults.SEMI_SUPERVISED_L1:g} with --free-components).",
        min=0,
    ),
]
L2 = Annotated[float, typer.Option("--l2", help="L2 penalty on activations.", min=0)]
MaxIter = Annotated[
    int | None,
    typer.Option("--max-iter", help=f"NMF iteration cap (default {defaults.TRAIN_ITER}).", min=1),
]
SeparateMaxIter = Annotated[
    int | None,
    typer.Option(
        "--max-iter",
        help="Activation iterations per block (default: the model's recommendation, "
        f"else {defaults.SEPARATE_ITER}).",
        min=1,
    ),
]
ClusterMaxIter = Annotated[
    int | None,
    typer.Option(
        "--max-iter",
        help=f"NMF iterations learning the bases on the mix (default {defaults.TRAIN_ITER}; "
        f"then {defaults.CLUSTER_SEPARATE_ITER} per block separating).",
        min=1,
    ),
]
Tol = Annotated[float, typer.Option("--tol", help="Stop when the loss improves by less.", min=0)]
MaskPower = Annotated[
    float | None,
    typer.Option(
        "--mask-power",
        help="Wiener mask exponent p: M_i = P_i^p / sum_j P_j^p "
        f"(default {defaults.MASK_POWER:g}, or the model's recommendation: see info).",
        min=0,
    ),
]
Channels = Annotated[
    str,
    typer.Option(
        "--channels",
        help="keep: one output channel per input channel (masks applied to each); "
        "mono: down-mix the input first, mono outputs.",
    ),
]
Plot = Annotated[
    bool,
    typer.Option("--plot", help="Also write {track}/separation.png (needs the 'plot' extra)."),
]
PlotScale = Annotated[
    str,
    typer.Option("--plot-scale", help="Frequency axis of --plot pictures: log, linear or mel."),
]
BlockSeconds = Annotated[
    float | None,
    typer.Option(
        "--block-seconds",
        help="Audio per streamed block: memory is bounded by the block, not the file "
        "(default: automatic, 10-60 s).",
        min=0.1,
    ),
]
ClipMode = Annotated[
    str,
    typer.Option(
        "--clip-mode",
        help="Outputs that would clip in the input's integer format: float (write 32-bit float "
        "WAV; FLAC has none and is rescaled), rescale (scale all sources of the input by one "
        "gain), clamp (clip; sources no longer sum to the mixture). Said once on stderr.",
    ),
]
Inputs = Annotated[
    list[str] | None,
    typer.Argument(help="Mixtures: files, directories or glob patterns.", show_default=False),
]


# ----------------------------------------------------------------------------- helpers


def _examples(*lines: str) -> str:
    """A command's epilog: one example per line (never joined on one line)."""
    return "Examples:\n" + "\n".join(f"  {line}" for line in lines)


class _Reporter:
    """Human progress on stderr (rich), the JSON summary on stdout."""

    def __init__(self, *, quiet: bool, verbose: bool, json_out: bool) -> None:
        from rich.console import Console

        self.quiet = quiet
        self.verbose = verbose
        self.json_out = json_out
        self.err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
        self.records: list[Any] = []

    def notice(self, message: str) -> None:
        if not self.quiet:  # one line each, as errors are (a file name may hold a line break)
            self.err.print(_one_line(message), markup=False)

    def error(self, path: str | None, message: str) -> None:
        # Errors are printed even with --quiet: one line, file first.
        line = f"error: {path}: {message}" if path else f"error: {message}"
        print(_one_line(line), file=sys.stderr, flush=True)

    def record(self, record: Any) -> None:
        self.records.append(record)
        if record.status == "error":
            self.error(record.input, record.error)
        elif record.status == "skipped":
            self.notice(f"skip  {record.input}: outputs exist (use --overwrite to redo)")
        elif record.status == "claimed":
            why = "; ".join(record.notes or []) or "claimed by another run"
            self.notice(f"skip  {record.input}: {why}")
        else:
            for note in record.notes or []:
                self.notice(f"note  {record.input}: {note}")
            outs = ", ".join(record.outputs.values())
            self.notice(
                f"ok    {record.input} -> {outs} "
                f"({record.duration:.1f} s audio in {record.seconds:.2f} s)"
            )
            for extra in (record.plot, record.model):
                if extra:
                    self.notice(f"      wrote {extra}")
            if self.verbose and record.settings:
                self.notice("      settings: " + json.dumps(record.settings, sort_keys=True))


class _Bars:
    """Progress bars on stderr, only when it is a terminal and not ``-q``: one over the files
    (ETA, real-time factor) and one per file being separated in this process (samples, ETA,
    real-time factor). Files run by pool workers advance the files bar as they finish."""

    def __init__(self, console: Any, *, quiet: bool, n_files: int) -> None:
        self.enabled = not quiet and n_files > 0 and bool(console.is_terminal)
        self.n_files = n_files
        self.finished = 0
        self.audio = 0.0
        self.t0 = time.perf_counter()
        self.files: dict[str, tuple[Any, int | None, float]] = {}
        self.bars: Any = None
        if not self.enabled:
            return
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
            transient=True,
            redirect_stdout=False,  # --json goes to stdout untouched
        )
        self.overall = self.bars.add_task(
            f"files 0/{n_files}", total=n_files, info="", visible=n_files > 1
        )

    def __enter__(self) -> _Bars:
        if self.bars is not None:
            self.bars.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bars is not None:
            self.bars.stop()

    def piece(self, name: str, done: int, total: int) -> None:
        """``progress(input, samples_done, samples_total)`` of a job in this process."""
        if self.bars is None:
            return
        if name not in self.files:
            sr = None
            with contextlib.suppress(Exception):  # ffmpeg inputs: no header to read
                from nmfsep.audio import audio_info

                if name != "-":  # stdin: its header is the stream's, not to be read twice
                    header = audio_info(name)
                    sr, total = header.sr, total or header.frames
            label = _printable(Path(name).name)
            task = self.bars.add_task(label, total=total or None, info="")
            self.files[name] = (task, sr, time.perf_counter())
        task, sr, t0 = self.files[name]
        info = ""
        if sr and done:
            rtf = done / sr / max(time.perf_counter() - t0, 1e-6)
            info = f"{done / sr:.0f} s audio, {rtf:.1f}x real time"
        self.bars.update(task, completed=done, info=info, **({"total": total} if total else {}))
        if total:
            self.bars.update(self.overall, completed=self.finished + min(done / total, 1.0))

    def record(self, record: Any) -> None:
        """A job finished (any status)."""
        if self.bars is None:
            return
        self.finished += 1
        self.audio += float(record.duration or 0.0)
        entry = self.files.pop(record.input, None)
        if entry is not None:
            self.bars.remove_task(entry[0])
        rtf = self.audio / max(time.perf_counter() - self.t0, 1e-6)
        self.bars.update(
            self.overall,
            completed=self.finished,
            description=f"files {self.finished}/{self.n_files}",
            info=f"{rtf:.1f}x real time" if self.audio else "",
        )


def _one_line(text: str) -> str:
    """Keep an error on one line even when a file name holds a line break."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _printable(text: object) -> str:
    """``text`` safe for any terminal encoding: lone surrogates (names that are not UTF-8)
    shown as ``\\udcff``-style escapes instead of crashing the print."""
    return str(text).encode("utf-8", "backslashreplace").decode("utf-8")


#: The last error said on stderr and whether the JSON summary was printed (for ``--json``).
_STATE: dict[str, Any] = {"error": None, "json_printed": False}


def _fail(exc: NmfsepError) -> typer.Exit:
    _STATE["error"] = str(exc)
    print(_one_line(f"error: {exc}"), file=sys.stderr, flush=True)
    return typer.Exit(exc.exit_code)


def _usage(message: str) -> typer.Exit:
    _STATE["error"] = message
    print(_one_line(f"error: {message}"), file=sys.stderr, flush=True)
    return typer.Exit(2)


def _print_json(payload: dict[str, Any]) -> None:
    _STATE["json_printed"] = True
    text = json.dumps(payload, indent=2, default=str)
    try:
        if sys.stdout is None:  # started with stdout closed: print() would drop it silently
            raise OSError(errno.EBADF, "standard output is closed")
        print(text, flush=True)
    except OSError as exc:
        from nmfsep.pipes import detach_stdout

        detach_stdout()  # the interpreter's final flush must not fail again
        reason = exc.strerror or str(exc)
        print(f"error: cannot write the JSON summary to stdout ({reason})", file=sys.stderr)
        raise typer.Exit(1) from None


@contextlib.contextmanager
def _json_guard(command: str, json_out: bool) -> Iterator[None]:
    """With ``--json`` a summary is printed whatever happens: ``"status": "error"`` when the
    command stops before (or outside) the batch, ``"interrupted"`` on Ctrl-C / SIGTERM."""
    _STATE.update(error=None, json_printed=False)

    def say(status: str, code: int, error: str | None) -> None:
        if json_out and not _STATE["json_printed"]:
            _print_json(
                {
                    "command": command,
                    "version": __version__,
                    "status": status,
                    "ok": False,
                    "error": error,
                    "exit_code": code,
                }
            )

    try:
        yield
    except typer.Exit as exc:
        if exc.exit_code:
            status = "interrupted" if exc.exit_code in (130, 143) else "error"
            say(status, exc.exit_code, _STATE["error"])
        raise
    except KeyboardInterrupt:
        say("interrupted", 130, "interrupted")
        print("interrupted", file=sys.stderr, flush=True)
        raise typer.Exit(130) from None
    except SystemExit as exc:
        if exc.code == 143:
            say("interrupted", 143, "terminated (SIGTERM)")
        raise
    except NmfsepError as exc:
        _fail(exc)
        say("error", exc.exit_code, str(exc))
        raise typer.Exit(exc.exit_code) from None
    except OSError as exc:
        if exc.filename is None:  # not about a file: a bug
            say("error", 1, f"internal error: {type(exc).__name__}: {exc}")
            raise
        # a path check the OS refused (a name over 255 bytes, a directory without search
        # permission): Path.exists() and is_dir() raise on those instead of answering False
        from nmfsep.audio import os_error

        err = os_error(exc)
        _fail(err)
        say("error", err.exit_code, str(err))
        raise typer.Exit(err.exit_code) from None
    except Exception as exc:
        say("error", 1, f"internal error: {type(exc).__name__}: {exc}")
        raise


def _guarded(command: str) -> Any:
    """Decorator: run the command under :func:`_json_guard` (``--json`` always answers)."""
    import functools

    def decorate(fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _json_guard(command, bool(kwargs.get("json_out"))):
                return fn(*args, **kwargs)

        return wrapper

    return decorate


def _collect_inputs(
    inputs: list[str] | None,
    files_from: str | None,
    *,
    recursive: bool,
    outdir: Path | None = None,
    null: bool = False,
) -> list[Any]:
    from nmfsep.inputs import expand_inputs, read_file_list

    names = list(inputs or [])
    if null and files_from is None:
        raise _usage("-0/--null needs --files-from")
    if files_from is not None:
        try:
            names += _read_null_list(files_from) if null else read_file_list(files_from)
        except ParameterError as exc:
            raise _usage(str(exc)) from None
    if not names:
        raise _usage("no input given (name files, directories, globs, or use --files-from)")
    if any("\0" in n for n in names):
        raise _usage("an input name holds a NUL byte")
    # directories and globs never give OUTDIR's files: a re-run must not separate its outputs
    return expand_inputs(names, recursive=recursive, exclude=[outdir] if outdir else [])


def _read_null_list(source: str) -> list[str]:
    """``--files-from LIST -0``: names separated by NUL bytes (``find -print0``)."""
    from nmfsep.inputs import MAX_LIST_BYTES, MAX_LIST_ENTRIES

    try:
        if source == "-":
            data = sys.stdin.buffer.read(MAX_LIST_BYTES + 1)
        else:
            with open(source, "rb") as fh:
                data = fh.read(MAX_LIST_BYTES + 1)
    except OSError as exc:
        raise ParameterError(f"cannot read file list: {exc.strerror}", path=source) from None
    if len(data) > MAX_LIST_BYTES:
        raise ParameterError(f"the file list is larger than {MAX_LIST_BYTES >> 20} MiB")
    names = [os.fsdecode(n) for n in data.split(b"\0") if n]
    if len(names) > MAX_LIST_ENTRIES:
        raise ParameterError(f"the file list has more than {MAX_LIST_ENTRIES} entries")
    return names


def _subtype_arg(subtype: str | None, int16: bool, int24: bool, float32: bool) -> str | None:
    """``--subtype`` or one of its short forms (one at most)."""
    chosen = [n for n, on in (("PCM_16", int16), ("PCM_24", int24), ("FLOAT", float32)) if on]
    if subtype is not None:
        chosen.append(subtype.upper())
    if len(chosen) > 1:
        raise _usage("give one of --subtype, --int16, --int24, --float32")
    if not chosen:
        return None
    import soundfile as sf

    if chosen[0] not in sf.available_subtypes():
        raise _usage(
            f"--subtype {chosen[0]} is unknown; libsndfile has "
            + ", ".join(sorted(sf.available_subtypes()))
        )
    return chosen[0]


#: --format -> (libsndfile format, subtype used when none is asked for) on stdout.
_STREAM_FORMATS = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "opus": ("OGG", "OPUS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}


def _check_format(fmt: str | None, subtype: str | None, template: str) -> str:
    """The output format (``--format``, default :data:`defaults.FORMAT`), refused when it is
    unknown, cannot hold ``subtype``, or contradicts the extension ``template`` writes out
    (``--format flac --filename '{source}.wav'`` wrote WAV files: the path decides)."""
    from nmfsep.batch import OUTPUT_FORMATS

    if fmt is not None and fmt not in (*OUTPUT_FORMATS, "same"):
        raise _usage(f"--format must be one of {', '.join(OUTPUT_FORMATS)}, same; got {fmt!r}")
    if fmt is None:
        fmt = defaults.FORMAT
    elif "{ext}" not in template and fmt != "same":
        ext = os.path.splitext(template)[1].lower().lstrip(".")
        if ext != fmt:
            raise _usage(
                f"--format {fmt} but --filename {template!r} writes "
                + (f".{ext} files" if ext else "files without an extension")
                + "; put {ext} in the template, or leave --format out"
            )
    if subtype is not None and fmt != "same":
        import soundfile as sf

        container, _ = _STREAM_FORMATS[fmt]
        if not sf.check_format(container, subtype):
            raise _usage(f"--subtype {subtype} cannot be written as {fmt}")
    return fmt


def _selected(names: list[str], sources: str | None, stdout: str | None) -> list[str]:
    """``--sources a,b`` (and ``--stdout``): the sources to write, in the model's order."""
    wanted = [] if sources is None else [n.strip() for n in sources.split(",") if n.strip()]
    if sources is not None and not wanted:
        raise _usage("--sources names no source")
    for flag, chosen in (("--sources", wanted), ("--stdout", [stdout] if stdout else [])):
        unknown = [n for n in chosen if n not in names]
        if unknown:
            raise _usage(
                f"{flag}: no source {', '.join(map(repr, unknown))}; this separation gives "
                + ", ".join(names)
            )
    if stdout is not None and sources is None:
        return []
    return [n for n in names if n in wanted] if wanted else list(names)


def _dispatch(
    command: str,
    *,
    inputs: list[str] | None,
    files_from: str | None,
    recursive: bool,
    null: bool,
    names: list[str],
    sources: str | None,
    stdout: str | None,
    name: str | None,
    plot: bool,
    plot_scale: str,
    subtype: str | None,
    fmt: str,
    template: str,
    outdir: Path,
    options: Any,
    model: str | None,
    overwrite: bool,
    jobs: int | None,
    scheduler: str | None,
    json_out: bool,
    quiet: bool,
    verbose: bool,
    channels: str,
    clip_mode: str,
    start: float,
    duration: float | None,
    save_model: str | None = None,
    extra_summary: dict[str, Any] | None = None,
) -> None:
    """``separate`` and ``cluster`` after their options are parsed: one stream (stdin and/or
    --stdout) or a batch of files."""
    if duration is not None and duration <= 0:
        raise _usage(f"--duration must be a positive number of seconds, got {duration:g}")
    wanted = _selected(names, sources, stdout)
    common: dict[str, Any] = dict(
        command=command,
        outdir=outdir,
        template=template,
        fmt=fmt,
        options=options,
        model=model,
        overwrite=overwrite,
        json_out=json_out,
        quiet=quiet,
        verbose=verbose,
        channels=channels,
        clip_mode=clip_mode,
        save_model=save_model,
        extra_summary=extra_summary,
    )
    if (inputs and "-" in inputs) or stdout is not None:
        if files_from == "-" and inputs and "-" in inputs:
            raise _usage("'-' and --files-from - both read standard input: give one")
        if len(inputs or []) != 1 or files_from is not None:
            what = (
                "--stdout takes exactly one input"
                if stdout is not None
                else ("'-' (stdin) is the only input when given")
            )
            raise _usage(f"{what} (no other inputs, no --files-from)")
        if plot:
            raise _usage("--plot cannot be used with '-' or --stdout")
        assert inputs is not None
        _run_single(
            source=inputs[0],
            name=name,
            names=names,
            to_files=wanted,
            stdout=stdout,
            subtype=subtype,
            start=start,
            duration=duration,
            **common,
        )
        return
    items = _collect_inputs(inputs, files_from, recursive=recursive, outdir=outdir, null=null)
    if save_model is not None:
        if len(items) != 1:
            raise _usage("--save-model takes exactly one input")
        _check_target(Path(save_model), "--save-model", [i.path for i in items])
        _check_outdir(Path(save_model).absolute().parent)  # refused now, not after the work
    _run_batch(
        inputs=items,
        sources=wanted,
        jobs=jobs,
        scheduler=scheduler,
        plot=plot,
        job_extra={
            "start": start,
            "duration": duration,
            "subtype": subtype,
            "plot_scale": _plot_scale(plot_scale),
        },
        **common,
    )


def _run_single(
    *,
    command: str,
    source: str,
    name: str | None,
    names: list[str],
    to_files: list[str],
    stdout: str | None,
    outdir: Path,
    template: str,
    fmt: str,
    subtype: str | None,
    options: Any,
    model: str | None,
    overwrite: bool,
    json_out: bool,
    quiet: bool,
    verbose: bool,
    channels: str,
    clip_mode: str,
    start: float,
    duration: float | None,
    save_model: str | None = None,
    extra_summary: dict[str, Any] | None = None,
) -> None:
    """One input read from stdin ('-') and/or one source written to stdout: streamed through
    the engine (never read whole), no worker processes."""
    from nmfsep import pipes, streaming
    from nmfsep.batch import JobRecord, output_paths, output_subtype, summarize
    from nmfsep.options import ClusterOptions

    t0 = time.perf_counter()
    report = _Reporter(quiet=quiet, verbose=verbose, json_out=json_out)
    if stdout is not None and json_out:
        raise _usage("--json and --stdout both write to stdout: give one")
    from_stdin = source == pipes.STDIO
    src: Any = pipes.open_stream() if from_stdin else source
    base = "PCM_16"
    if from_stdin and to_files:
        # the stream's header says its container and sample format, as a file's would: a
        # 24-bit or float stream keeps them (a 1e-30 float stream would be silence in 16 bits)
        container, base = src.format_info()
        if fmt == "same":
            fmt = {"FLAC": "flac", "OGG": "ogg"}.get(container, "wav")
    elif fmt == "same" and from_stdin:
        fmt = "wav"
    track = name or ("stdin" if from_stdin else Path(source).stem)
    label = pipes.STDIO if from_stdin else source
    targets: dict[str, Any] = {}
    subtypes: dict[str, str | None] = {}
    paths: dict[str, str] = {}
    if to_files:
        from nmfsep.batch import check_template, same_ext

        try:
            check_template(template)
            ext = same_ext(source) if fmt == "same" else fmt
            paths = output_paths(
                outdir, template, track=track, input_path=label, sources=to_files, ext=ext
            )
        except ParameterError as exc:
            raise _usage(exc.message) from None
        # no output may be the input: stdin's file when it is one (`< out.wav`), even with
        # --overwrite; the batch path refuses the same by device and inode
        _check_not_input(list(paths.values()), None if from_stdin else source)
        done = [p for p in paths.values() if os.path.isfile(p)]
        # cluster -n auto: the first N of the planned outputs are written, all together
        auto = isinstance(options, ClusterOptions) and options.n_sources == 0
        saved = save_model is None or os.path.isfile(save_model)
        if not overwrite and done and saved and (auto or len(done) == len(paths)):
            report.notice(f"skip  {label}: outputs exist (use --overwrite to redo)")
            return
        if not overwrite and done and not auto:  # as a file input's batch refuses it
            from nmfsep.batch import partial_outputs

            raise _fail(NmfsepError(partial_outputs(done[0]), path=label))
        if not from_stdin and not pipes.needs_ffmpeg(source):
            from nmfsep.audio import audio_info

            base = audio_info(source).subtype
        for n, p in paths.items():
            targets[n] = p
            subtypes[n] = subtype or output_subtype(base, Path(p).suffix.lower().lstrip("."))
    if save_model is not None:
        from nmfsep.batch import same_path

        _check_not_input([save_model], None if from_stdin else source)  # nor the model
        _check_target(Path(save_model), "--save-model", [] if from_stdin else [source])
        clash = next((p for p in paths.values() if same_path(p, save_model)), None)
        if clash is not None:
            raise _usage(f"--save-model {save_model} is also the output {clash}")
        if not overwrite and os.path.lexists(save_model):
            raise _usage(f"--save-model {save_model}: exists (use --overwrite to replace it)")
        _check_outdir(Path(save_model).absolute().parent)
    # what killed runs left where this one writes (as the batch path does): only nmfsep's own
    # temporary files of dead writers, in the directories of the planned files
    from nmfsep.audio import cleanup_temp_files

    areas = {
        os.path.dirname(os.path.abspath(p))
        for p in (*paths.values(), save_model)
        if p is not None and os.path.isdir(os.path.dirname(os.path.abspath(p)))
    }
    if cleanup_temp_files(areas):
        report.notice("removed unfinished temporary file(s) from an earlier run")
    if stdout is not None:
        _check_stdout(None if from_stdin else source, model)
        container, default_subtype = _STREAM_FORMATS["wav" if fmt == "same" else fmt]
        targets[stdout] = pipes.OutputStream(sys.stdout.buffer, container)
        subtypes[stdout] = subtype or default_subtype
    common: dict[str, Any] = {
        "mono": channels == "mono",
        "subtypes": subtypes,
        "n_threads": max(1, os.cpu_count() or 1),
        "clip_mode": clip_mode,
        "start": start,
        "duration": duration,
        "replace": overwrite,
    }
    _say_if_compiling(quiet)
    bars = _Bars(report.err, quiet=quiet, n_files=1)
    common["progress"] = lambda done, total: bars.piece(label, done, total)
    from nmfsep.batch import KeptOld

    # the files this run may replace, kept until it succeeds (a failed run puts them back)
    kept = KeptOld([*paths.values(), *([save_model] if save_model is not None else [])])
    try:
        trained = None
        with bars:
            bars.piece(label, 0, 0)
            if isinstance(options, ClusterOptions):
                result, trained = streaming.cluster_file(
                    src, targets, options=options, allow_silent=save_model is None, **common
                )
            else:
                from nmfsep.batch import _load_model_cached

                result = streaming.separate_file(
                    src, targets, _load_model_cached(model), options=options, **common
                )
        if trained is not None and save_model is not None:
            try:
                trained.save(save_model, protect=[] if from_stdin else [source], replace=overwrite)
            except NmfsepError:
                # the run failed: the outputs it just wrote go too, as a batch job's would
                for path in result.outputs.values():
                    if isinstance(path, str):
                        with contextlib.suppress(OSError):
                            os.unlink(path)
                raise
    except NmfsepError as exc:
        kept.restore()
        # name the file when it is another than the input (the model that could not be saved)
        other = exc.path is not None and os.fspath(exc.path) != label
        record = JobRecord(label, "error", error=str(exc) if other else exc.message)
    except BaseException:
        kept.restore()
        raise
    else:
        kept.discard()
        seconds = time.perf_counter() - t0
        audio = result.n_samples / result.sr
        record = JobRecord(
            label,
            "ok",
            outputs=dict(result.outputs),
            duration=round(audio, 3),
            seconds=round(seconds, 3),
            settings=result.settings,
            realtime=round(audio / max(seconds, 1e-9), 2),
            model=save_model if trained is not None else None,
        )
    _finishing()
    report.record(record)
    if json_out:
        summary = summarize([record], seconds=time.perf_counter() - t0)
        _print_json(
            {
                "command": command,
                "version": __version__,
                **(extra_summary or {}),
                "status": "ok" if record.status == "ok" else "failed",
                "ok": record.status == "ok",
                "summary": summary,
                "files": [record.to_dict()],
            }
        )
    if record.status == "error":
        raise typer.Exit(1)


def _stdin_id() -> tuple[int, int] | None:
    from nmfsep.batch import _file_id

    try:
        return _file_id(fd=sys.stdin.fileno())
    except (ValueError, AttributeError, OSError):  # closed, or not a real file (a test)
        return None


def _check_not_input(targets: list[str], source: str | None) -> None:
    """Refuse a target that is the input file (``source``; None: stdin's file, when it is one)."""
    from nmfsep.batch import _file_id

    inp = _file_id(source) if source is not None else _stdin_id()
    if inp is None:
        return
    for target in targets:
        if _file_id(target) == inp:
            what = "the input file" if source is not None else "the file on standard input"
            raise _usage(f"{target} is {what}: refusing to write over it")


def _check_stdout(source: str | None, model: str | None = None) -> None:
    """Refuse ``--stdout`` when standard output is closed, or is the input file itself (``1<>
    in.wav``: the input would be overwritten while it is read) or the model file. ``source``:
    the input's path, None when it is read from stdin (then stdin's file is compared)."""
    from nmfsep.batch import _file_id

    if sys.stdout is None:
        raise _usage("--stdout: standard output is closed")
    try:
        out = _file_id(fd=sys.stdout.fileno())
    except (ValueError, AttributeError, OSError):
        return  # not a real file (a test's capture): nothing to overwrite
    if out is None:
        return
    inp = _file_id(source) if source is not None else _stdin_id()
    if inp == out:
        what = source if source is not None else "stdin"
        raise _usage(f"--stdout: standard output is the input {what}; refusing to write over it")
    if model not in (None, "default") and _file_id(model) == out:
        raise _usage(f"--stdout: standard output is the model {model}; refusing to write over it")


def _run_batch(
    *,
    command: str,
    inputs: list[Any],
    sources: list[str],
    outdir: Path,
    template: str,
    fmt: str,
    options: Any,
    model: str | None,
    overwrite: bool,
    jobs: int | None,
    scheduler: str | None,
    json_out: bool,
    quiet: bool,
    verbose: bool,
    plot: bool = False,
    save_model: str | None = None,
    extra_summary: dict[str, Any] | None = None,
    channels: str = "keep",
    clip_mode: str = "float",
    job_extra: dict[str, Any] | None = None,
) -> None:
    from dataclasses import replace

    from nmfsep.audio import CLIP_MODES, cleanup_temp_files
    from nmfsep.batch import OUTPUT_FORMATS, cleanup_locks, plan_jobs, run_jobs, summarize

    t0 = time.perf_counter()
    report = _Reporter(quiet=quiet, verbose=verbose, json_out=json_out)
    if channels not in ("keep", "mono"):
        raise _usage(f"--channels must be keep or mono, got {channels!r}")
    if fmt not in (*OUTPUT_FORMATS, "same"):
        raise _usage(f"--format must be one of {', '.join(OUTPUT_FORMATS)}, same; got {fmt!r}")
    if clip_mode not in CLIP_MODES:
        raise _usage(f"--clip-mode must be one of {', '.join(CLIP_MODES)}, got {clip_mode!r}")
    _check_outdir(outdir)
    if plot:
        _require("matplotlib", "plot", "--plot")
    try:
        planned, records = plan_jobs(
            inputs,
            sources=sources,
            outdir=str(outdir),
            template=template,
            ext=fmt,
            options=options,
            model=model,
            overwrite=overwrite,
            plot=plot,
            save_model=save_model,
            mono=channels == "mono",
            clip_mode=clip_mode,
        )
    except ParameterError as exc:
        raise _usage(str(exc)) from None
    # What killed runs left where this run writes (after planning: a stale claim marks a
    # killed run's partial outputs): the directories of the planned files only, never a walk
    # of OUTDIR, and only nmfsep's own temporary and claim files (a live run's are kept).
    areas = {
        os.path.dirname(os.path.abspath(p))
        for job in planned
        for p in (*job.outputs.values(), job.plot, job.save_model)
        if p is not None
    }
    removed = cleanup_temp_files(areas)
    if removed:
        report.notice(f"removed {removed} unfinished temporary file(s) from an earlier run")
    cleanup_locks(areas)
    if job_extra:
        planned = [replace(job, **job_extra) for job in planned]
    for record in records:
        report.record(record)
    n_jobs = jobs or os.cpu_count() or 1

    def payload(status: str, all_records: list[Any]) -> dict[str, Any]:
        summary = summarize(all_records, seconds=time.perf_counter() - t0)
        return {
            "command": command,
            "version": __version__,
            **(extra_summary or {}),
            "status": status,
            "ok": status == "ok",
            "summary": summary,
            "files": [r.to_dict() for r in all_records],
        }

    try:
        if planned:
            _say_if_compiling(quiet)
        bars = _Bars(report.err, quiet=quiet, n_files=len(planned))

        def on_done(record: Any) -> None:
            bars.record(record)
            report.record(record)

        with bars:
            done = run_jobs(
                planned, n_jobs=n_jobs, scheduler=scheduler, on_done=on_done, progress=bars.piece
            )
    except (KeyboardInterrupt, SystemExit) as exc:
        code = 143 if isinstance(exc, SystemExit) and exc.code == 143 else 130
        if isinstance(exc, SystemExit) and code != 143:
            raise
        # Finished outputs are complete files; unfinished ones were never renamed into place.
        print("interrupted: unfinished inputs have no outputs", file=sys.stderr, flush=True)
        if json_out:
            from nmfsep.batch import JobRecord

            finished = {r.input for r in report.records}
            left = [JobRecord(j.input, "interrupted") for j in planned if j.input not in finished]
            _print_json(payload("interrupted", report.records + left))
        raise typer.Exit(code) from None
    _finishing()
    all_records = records + done
    result = payload("failed" if any(r.status == "error" for r in all_records) else "ok",
                     all_records)  # fmt: skip
    summary = result["summary"]
    if json_out:
        _print_json(result)
    if summary["total"] > 1 or summary["failed"]:
        claimed = f", {summary['claimed']} claimed by another run" if summary["claimed"] else ""
        report.notice(
            f"{summary['ok']} done, {summary['skipped']} skipped{claimed}, "
            f"{summary['failed']} failed in {summary['seconds']:.1f} s"
        )
    if summary["failed"]:
        raise typer.Exit(1)


def _check_outdir(outdir: Path) -> None:
    """Refuse an OUTDIR that is a file, or cannot be created or written, before any work."""
    existing = next((p for p in (outdir, *outdir.parents) if p.exists()), None)
    if existing is None:  # pragma: no cover - "." or "/" always exists
        return
    if not existing.is_dir():
        if existing == outdir:
            raise _usage(f"{outdir}: output directory is a file")
        raise _usage(f"{outdir}: cannot create the output directory: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = (
            "output directory is not writable"
            if existing == outdir
            else f"cannot create the output directory: {existing} is not writable"
        )
        raise _fail(NmfsepError(what, path=outdir))


def _check_numbers(**options: float | None) -> None:
    """Options typer lets through but that are no usable number (inf, nan, mask power 0)."""
    for name, value in options.items():
        if value is None:
            continue
        flag = "--" + name.replace("_", "-")
        if value != value or value in (float("inf"), float("-inf")):
            raise _usage(f"{flag} must be a finite number, got {value}")
        if name == "mask_power" and value <= 0:
            raise _usage(f"{flag} must be a positive number, got {value}")


def _limit(check: Any) -> Any:
    """Run a :mod:`nmfsep.limits` check; its refusal is a usage error (exit 2)."""
    try:
        return check()
    except ParameterError as exc:
        raise _usage(exc.message) from None


def _check_target(path: Path, flag: str, inputs: Any) -> None:
    """Refuse (exit 2, before any work) an output path that is a directory, FIFO, device or
    socket, or one of the command's inputs (``inputs``: paths)."""
    from nmfsep.audio import check_target

    try:
        check_target(path, protect=list(inputs))
    except NmfsepError as exc:
        raise _usage(f"{flag}: {exc}") from None


def _check_train_size(spec: dict[str, list[Path]], sr: int | None, options: Any) -> None:
    """What the STFT, context and -k imply in memory, refused before any audio is read (the
    training frames: :func:`nmfsep.training.frame_budget` of them per source)."""
    from nmfsep.audio import audio_info
    from nmfsep.training import frame_budget, train_config

    first = next(iter(spec.values()))[0]
    rate = sr if sr is not None else audio_info(first).sr
    config = train_config(int(rate), options)
    rows = (config.n_fft // 2 + 1) * options.context
    # no more frames than the files hold (a 1 s file at 768 kHz has 47, not the 2000 floor)
    held = longest = 0
    for files in spec.values():
        samples = 0
        for f in files:
            try:
                info = audio_info(f)
            except NmfsepError:  # read later, and named then (or decoded by ffmpeg)
                samples = 1 << 62
                break
            samples += info.frames * rate // max(info.sr, 1)
        held = max(held, samples // config.hop_length + len(files))
        longest = max(longest, samples)
    frames = min(frame_budget(config, options), held)
    _limit(lambda: limits.check_memory("the training frames", rows=rows, cols=frames))
    _limit(lambda: limits.check_memory("the bases", rows=rows, cols=options.n_components))
    seconds = min(int(defaults.TRAIN_SECONDS * rate), longest)
    _limit(lambda: limits.check_memory("the training audio", rows=1, cols=seconds))


def _require(module: str, extra: str, what: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise _usage(f"{what} needs the '{extra}' extra: pip install 'nmfsep[{extra}]'")


def _options(cls: Any, **fields: Any) -> Any:
    """Build an options dataclass; a bad value is a usage error (exit 2), before any work."""
    try:
        return cls(**{k: v for k, v in fields.items() if v is not None})
    except ParameterError as exc:
        # name the flag, not the field: "beta must be ..." -> "--beta must be ..."
        flags = {"n_components": "--components", "n_sources": "--n-sources"}
        message = exc.message
        for name in sorted(fields, key=len, reverse=True):
            if message.startswith(name + " "):
                flag = flags.get(name, "--" + name.replace("_", "-"))
                message = flag + message[len(name) :]
                break
        raise _usage(message) from None


def _plot_scale(scale: str) -> str:
    if scale not in ("log", "linear", "mel"):
        raise _usage(f"--plot-scale must be log, linear or mel, got {scale!r}")
    return scale


def _model_arg(model: Path | str | None) -> str | None:
    """``-m``/``--model``: a file, or ``default`` (or nothing) for the built-in model."""
    return None if model is None or str(model) == "default" else str(model)


def _version_callback(value: bool) -> None:
    if value:
        print(f"nmfsep {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """Separate audio sources with non-negative matrix factorization (NMF)."""


# ----------------------------------------------------------------------------- commands


@app.command(
    epilog=_examples(
        "nmfsep train speech=sample_audio/train_speech.wav noise=sample_audio/train_noise.wav"
        " -o tavern.npz",
        "nmfsep train speech=clean/*.wav noise=noise_dir/ -o model.npz -k 32 --seed 1",
        "nmfsep train speech.wav -o speech_only.npz",
    )
)
@_guarded("train")
def train(
    sources: Annotated[
        list[str],
        typer.Argument(
            help="One per source: FILE, DIR (its audio files) or NAME=PATH[,PATH...]. "
            "The name is NAME, else the file stem or directory name.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Model file to write.", readable=False)
    ] = Path("model.npz"),
    components: Annotated[
        int | None,
        typer.Option(
            "--components", "-k", help=f"Bases per source (default {defaults.COMPONENTS}).", min=1
        ),
    ] = None,
    beta: Beta = None,
    l1: L1 = 0.0,
    l2: L2 = 0.0,
    n_fft: Annotated[
        int | None,
        typer.Option(
            "--n-fft",
            help=f"FFT size (default: a window of ~{defaults.WINDOW_SECONDS * 1000:.0f} ms, a "
            "power of two: 2048 at 16 kHz, 4096 at 44.1 kHz).",
            min=16,
        ),
    ] = None,
    hop_length: Annotated[
        int | None, typer.Option("--hop-length", help="Hop (default: n_fft/4).", min=1)
    ] = None,
    sr: Annotated[
        int | None,
        typer.Option("--sr", help="Model sample rate (default: the first file's rate).", min=1000),
    ] = None,
    context: Annotated[
        int | None,
        typer.Option(
            "--context",
            help=f"Frames per basis, odd (default {defaults.CONTEXT}): bases are spectro-temporal "
            "patches.",
            min=1,
        ),
    ] = None,
    max_iter: MaxIter = None,
    tol: Tol = defaults.TOL,
    seed: Seed = defaults.SEED,
    discriminative: Annotated[
        bool,
        typer.Option(
            "--discriminative",
            help="Also learn reconstruction bases on synthetic mixtures of the clips (issue 12).",
        ),
    ] = False,
    hpss_prior: Annotated[
        float,
        typer.Option(
            "--hpss-prior",
            help="Harmonic/percussive prior for music (FitzGerald, DAFx 2010 median-filter "
            "HPSS): record each source's percussive share, and separations with the model tilt "
            "their masks toward it with this strength (measured best 2-3 on drums vs pitched "
            "instruments; costs a little SDR on speech). 0: off.",
            show_default=True,
        ),
    ] = 0.0,
    exemplars: Annotated[
        int,
        typer.Option(
            "--exemplars",
            metavar="N",
            help="Also keep N of each source's training patches as exemplar bases beside the "
            "learned ones (no training cost; separation does more work per basis). 0: off.",
            min=0,
            show_default=True,
        ),
    ] = defaults.EXEMPLARS,
    refiner: Annotated[
        str | None,
        typer.Option(
            "--refiner",
            metavar="SOURCE",
            help="SOURCE is speech: attach the shipped learned mask refiner for speech "
            "(trained on a corpus of many speakers and noises) to it; separations with the "
            f"model then use --refine {defaults.TRAINED_REFINE:g} (on held-out speakers and "
            "noises: +0.2 dB SDR, +0.4 dB SI-SDR, +0.012 STOI). Default auto: the one source "
            "whose name has the word 'speech' or 'voice' (e.g. train_speech), if any, with two "
            "sources or more; none: no refiner.",
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", help="Replace an existing model (default: keep it, like separate)."
        ),
    ] = False,
    json_out: JsonOut = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Learn spectral bases for each source from clean examples and save a model file."""
    from nmfsep.inputs import parse_sources
    from nmfsep.options import TrainOptions
    from nmfsep.training import train_from_files

    try:
        _check_numbers(l1=l1, l2=l2, tol=tol)
        options = _options(
            TrainOptions,
            n_components=components,
            beta=beta,
            l1=l1,
            l2=l2,
            n_fft=n_fft,
            hop_length=hop_length,
            context=context,
            max_iter=max_iter,
            tol=tol,
            seed=seed,
            discriminative=discriminative,
            hpss_prior=hpss_prior,
            exemplars=exemplars,
            refiner=refiner,
        )
        if sr is not None:
            _limit(lambda: limits.check_sample_rate(sr, what="--sr"))
        spec = parse_sources(sources)
        if len(spec) < 1:
            raise _usage("name at least one source")
        from nmfsep.training import resolve_refiner

        refined = resolve_refiner(list(spec), options.refiner)
        if refined is not None:
            from nmfsep.training import check_refiner_source

            try:
                check_refiner_source(list(spec), refined)
            except ParameterError as exc:  # "refiner: ..." -> "--refiner: ..."
                raise _usage("--" + exc.message) from None
        training_files = [f for files in spec.values() for f in files]
        _check_target(output, "-o/--output", training_files)
        _check_train_size(spec, sr, options)
        report = _Reporter(quiet=quiet, verbose=verbose, json_out=json_out)
        if os.path.lexists(output) and not overwrite:
            report.notice(f"skip  {output}: exists (use --overwrite to train again)")
            if json_out:
                _print_json({"command": "train", "model": str(output), "status": "skipped"})
            return
        _check_outdir(output.absolute().parent)  # refused now, not after the training
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        iterations = options.max_iter
        bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} iterations, loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            console=report.err,
            transient=True,
            disable=quiet or not report.err.is_terminal,
        )
        tasks: dict[str, Any] = {}

        def on_check(source: str, n_iter: int, loss: float) -> None:
            if source not in tasks:
                tasks[source] = bars.add_task(f"training {source}", total=iterations, loss="-")
            bars.update(tasks[source], completed=n_iter, loss=f"{loss:.4g}")

        _say_if_compiling(quiet)
        with bars:
            model = train_from_files(
                spec,
                sr=sr,
                options=options,
                progress=None if quiet else report.notice,
                warn=_warn,
                callback=on_check,
            )
        # without --overwrite, a model another run wrote there meanwhile is kept
        model.save(output, protect=training_files, replace=overwrite)
    except NmfsepError as exc:
        raise _fail(exc) from None
    from nmfsep.model import describe_model

    summary = describe_model(model)
    if json_out:
        _print_json({"command": "train", "model": str(output), "status": "ok", **summary})
    report.notice(
        f"wrote {output}: "
        + ", ".join(f"{n} ({k} bases)" for n, k in model.n_components.items())
        + f", {model.sr} Hz, n_fft {model.stft.n_fft}, hop {model.stft.hop_length}"
    )


@app.command(
    epilog=_examples(
        "nmfsep separate noisy.wav",
        "nmfsep separate recordings/ -r -m model.npz -o clean --format flac --json",
        "nmfsep separate - --stdout speech < mix.wav > speech.wav",
        "find . -name '*.flac' -print0 | nmfsep separate --files-from - -0 -j 2",
    )
)
@_guarded("separate")
def separate(
    inputs: Inputs = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", help="Model file, or 'default' (the built-in speech/noise model)."
        ),
    ] = None,
    outdir: OutDir = Path(defaults.OUTDIR),
    filename: Template = defaults.TEMPLATE,
    fmt: Format = None,
    free_components: Annotated[
        int | None,
        typer.Option(
            "--free-components",
            help="Semi-supervised: K extra bases learned on the mix, written as 'residual' "
            "(or counted as --free-source). Default: the model's recommendation (built-in "
            "model: 2 noise bases), else 0.",
            min=0,
            show_default=False,
        ),
    ] = None,
    free_source: Annotated[
        str | None,
        typer.Option(
            "--free-source",
            help="The model source the free bases adapt (e.g. noise); default: a source of "
            "their own, 'residual'.",
            show_default=False,
        ),
    ] = None,
    mask_power: MaskPower = None,
    beta: SeparateBeta = None,
    l1: SeparateL1 = None,
    max_iter: SeparateMaxIter = None,
    tol: Tol = defaults.TOL,
    seed: Seed = defaults.SEED,
    overwrite: Overwrite = False,
    jobs: Jobs = None,
    recursive: Recursive = False,
    files_from: FilesFrom = None,
    scheduler: Scheduler = None,
    block_seconds: BlockSeconds = None,
    plot: Plot = False,
    plot_scale: PlotScale = "log",
    channels: Channels = "keep",
    clip_mode: ClipMode = "float",
    sources: Annotated[
        str | None,
        typer.Option("--sources", help="Write only these sources, comma-separated (e.g. speech)."),
    ] = None,
    stdout: ToStdout = None,
    name: StdinName = None,
    start: Start = 0.0,
    duration: Duration = None,
    subtype: Subtype = None,
    int16: Int16 = False,
    int24: Int24 = False,
    float32: Float32 = False,
    phase_iters: PhaseIters = 0,
    continuity: Continuity = None,
    continuity_source: ContinuitySource = None,
    atten_lim: Annotated[
        float | None,
        typer.Option(
            "--atten-lim",
            help="Strength limit: no part of the mixture is attenuated by more than this many "
            "dB in the first source's output (e.g. 12); the other sources take the rest, so "
            "the sum is still the mixture. Default: no limit.",
            min=0,
        ),
    ] = None,
    analysis_bands: Annotated[
        int | None,
        typer.Option(
            "--analysis-bands",
            help="Infer the activations on about N ERB-spaced bands (masks stay full "
            "resolution, fewer flops); 0: every frequency bin. Default: the model's "
            "recommendation (the built-in model: every bin, with 7 iterations), else "
            f"{defaults.ANALYSIS_BANDS}.",
            min=0,
            show_default=False,
        ),
    ] = None,
    gain: Annotated[
        str | None,
        typer.Option(
            "--gain",
            help="The first source's gain: wiener (the NMF masks) or tracked (a "
            "decision-directed gain, Ephraim & Malah 1984, against a noise estimate that blends "
            "the NMF one with a minimum-statistics tracker; measured +0.9 dB with the built-in "
            "model on unseen recordings). Default: the model's (the built-in model: tracked), "
            "else wiener.",
            show_default=False,
        ),
    ] = None,
    hpss_prior: Annotated[
        float | None,
        typer.Option(
            "--hpss-prior",
            help="Strength of the harmonic/percussive prior (FitzGerald, DAFx 2010 HPSS; "
            "0..10, 0: off) for a model trained with --hpss-prior. Default: the model's.",
            show_default=False,
        ),
    ] = None,
    refine: Annotated[
        float | None,
        typer.Option(
            "--refine",
            help="Weight (0..1) of the model's learned mask refiner in the first source's "
            "mask (a small network trained with the built-in model; measured +0.9 dB on "
            "unseen recordings); 0: off. Default: the model's (the built-in model: 0.5), "
            "else 0.",
            show_default=False,
        ),
    ] = None,
    cluster_blend: Annotated[
        float | None,
        typer.Option(
            "--cluster-blend",
            help="Blend the first source's mask with weight W (0..1) of a second estimate "
            "from each block's own NMF bases, grouped by this separation (as cluster "
            "--features guided), for about 1.2x the CPU. The built-in model gains about "
            '0.7 dB SDR with it on unseen voices and noises (bench/README.md, "Cluster '
            "blend\"). 0: off. Default: the model's (the built-in model: 0.5), else 0.",
            min=0.0,
            max=1.0,
            show_default=False,
        ),
    ] = None,
    stationary_blend: Annotated[
        float | None,
        typer.Option(
            "--stationary-blend",
            help="In blocks whose noise is stationary (rain, engines, fans, hiss), blend up "
            "to weight W (0..1) of a short-window decision-directed Wiener filter into the "
            "first source (two-source separations; the rest takes the difference). 0: off. "
            "Default: the model's (the built-in model: 0.7), else 0.",
            min=0.0,
            max=1.0,
            show_default=False,
        ),
    ] = None,
    frame_balance: Annotated[
        float | None,
        typer.Option(
            "--frame-balance",
            help="With free bases, how far each frame is brought to the same level before "
            "the fit (0..1): 0 the block as a whole (loud frames weigh most), 1 every frame "
            "alike. Default: the model's with its free bases (the built-in model: 1), else 0.",
            min=0.0,
            max=1.0,
            show_default=False,
        ),
    ] = None,
    null: Null = False,
    json_out: JsonOut = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Separate mixtures with a trained model: one audio file per source.

    '-' as the input reads one stream (WAV, FLAC or Ogg) from standard input, in bounded
    memory; --stdout SOURCE writes one source to standard output, so nmfsep works in a pipe.
    """
    from nmfsep import hpss
    from nmfsep.engine import output_sources
    from nmfsep.model import default_model, load_model
    from nmfsep.options import SeparateOptions

    try:
        _check_numbers(l1=l1, tol=tol, mask_power=mask_power, block_seconds=block_seconds)
        options = _options(
            SeparateOptions,
            mask_power=mask_power,
            free_components=free_components,
            free_source=free_source,
            beta=beta,
            l1=l1,
            max_iter=max_iter,
            tol=tol,
            seed=seed,
            block_seconds=block_seconds,
            atten_lim=atten_lim,
            phase_iters=phase_iters,
            continuity=continuity,
            continuity_source=continuity_source,
            hpss_prior=hpss_prior,
            gain=gain,
            analysis_bands=analysis_bands,
            refine=refine,
            cluster_blend=cluster_blend,
            stationary_blend=stationary_blend,
            frame_balance=frame_balance,
        )
        _check_numbers(start=start, duration=duration)
        kind = _subtype_arg(subtype, int16, int24, float32)
        fmt = _check_format(fmt, kind, filename)
        model_path = _model_arg(model)
        the_model = default_model() if model_path is None else load_model(model_path)
        try:
            used = options.resolved(the_model.metadata.get("separation"))
            names = output_sources(the_model, used.free_components or 0, used.free_source)
            if used.hpss_prior and hpss.shares_for(the_model.metadata, names) is None:
                raise ParameterError(
                    "--hpss-prior needs a model trained with --hpss-prior (it records each "
                    "source's percussive share)"
                )
            if used.refine and the_model.refiner is None:
                raise ParameterError(
                    "--refine needs a model that carries a learned mask refiner (the built-in "
                    "model does)"
                )
            if used.continuity_source is not None and used.continuity_source not in names:
                raise ParameterError(
                    f"--continuity-source {used.continuity_source!r} is not one of the "
                    f"sources ({', '.join(names)})"
                )
        except ParameterError as exc:
            raise _usage(f"{model_path or 'built-in model'}: {exc.message}") from None
        _dispatch(
            "separate",
            inputs=inputs,
            files_from=files_from,
            recursive=recursive,
            null=null,
            names=names,
            sources=sources,
            stdout=stdout,
            name=name,
            plot=plot,
            plot_scale=plot_scale,
            subtype=kind,
            fmt=fmt,
            template=filename,
            outdir=outdir,
            options=options,
            model=model_path,
            overwrite=overwrite,
            jobs=jobs,
            scheduler=scheduler,
            json_out=json_out,
            quiet=quiet,
            verbose=verbose,
            channels=channels,
            clip_mode=clip_mode,
            start=start,
            duration=duration,
            extra_summary={"model": "built-in" if model_path is None else model_path},
        )
    except NmfsepError as exc:
        raise _fail(exc) from None


@app.command(
    epilog=_examples(
        "nmfsep cluster sample_audio/guitar_drums_mix.wav -n 2",
        "nmfsep cluster song.wav -n 2 -k 40 --save-model song_model.npz --plot",
        "nmfsep cluster field_recording.wav -n auto --factoriser vb --json",
    )
)
@_guarded("cluster")
def cluster(
    inputs: Inputs = None,
    n_sources: Annotated[
        str,
        typer.Option(
            "--n-sources",
            "-n",
            help="Number of sources to find, or 'auto': "
            f"{min(defaults.CLUSTER_AUTO_SOURCES)}-{max(defaults.CLUSTER_AUTO_SOURCES)}, the "
            "count whose k-means of the bases' log-spectra has the best cosine silhouette "
            "(outputs source1..sourceN; --json gives N as settings.n_sources).",
            show_default=True,
        ),
    ] = str(defaults.CLUSTER_SOURCES),
    components: Annotated[
        int | None,
        typer.Option(
            "--components",
            "-k",
            help=f"Bases learned on the mix (default {defaults.COMPONENTS}).",
            min=1,
        ),
    ] = None,
    features: Annotated[
        str | None,
        typer.Option(
            "--features",
            help=f"Basis features for k-means: {', '.join(defaults.CLUSTER_FEATURE_KINDS)} "
            f"(default {defaults.CLUSTER_FEATURES}; see the README).",
        ),
    ] = None,
    outdir: OutDir = Path(defaults.OUTDIR),
    filename: Template = defaults.TEMPLATE,
    fmt: Format = None,
    mask_power: MaskPower = None,
    beta: Beta = None,
    l1: L1 = 0.0,
    max_iter: ClusterMaxIter = None,
    tol: Tol = defaults.TOL,
    seed: Seed = defaults.SEED,
    phase_iters: PhaseIters = 0,
    factoriser: Annotated[
        str | None,
        typer.Option(
            "--factoriser",
            help="How the bases are learned: mu (multiplicative updates, -k bases) or vb "
            "(variational Bayesian KL-NMF with Gamma priors, Cemgil 2009, run for -k times "
            "1/4, 1/2, 3/4, 1, 3/2 and the count with the best lower bound kept, as in Yang, "
            "Hsu & Chien, ISMIR 2014; its factorisation takes 7-15x the CPU of mu's). Default "
            f"{defaults.CLUSTER_FACTORISER}; see bench/README.md.",
            show_default=False,
        ),
    ] = None,
    save_model: Annotated[
        Path | None,
        typer.Option(
            "--save-model", help="Write the clustered bases as a model (one input).", readable=False
        ),
    ] = None,
    overwrite: Overwrite = False,
    jobs: Jobs = None,
    recursive: Recursive = False,
    files_from: FilesFrom = None,
    scheduler: Scheduler = None,
    plot: Plot = False,
    plot_scale: PlotScale = "log",
    channels: Channels = "keep",
    clip_mode: ClipMode = "float",
    sources: Annotated[
        str | None,
        typer.Option("--sources", help="Write only these sources, comma-separated (source1,...)."),
    ] = None,
    stdout: ToStdout = None,
    name: StdinName = None,
    start: Start = 0.0,
    duration: Duration = None,
    subtype: Subtype = None,
    int16: Int16 = False,
    int24: Int24 = False,
    float32: Float32 = False,
    null: Null = False,
    json_out: JsonOut = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Separate without training: NMF on each mixture, k-means on its bases.

    cluster reads its input twice (once to learn the bases, once to separate): '-' (stdin) is
    first copied to a temporary file in the system's temporary directory ($TMPDIR), removed at
    the end.
    """
    from nmfsep.options import ClusterOptions

    try:
        _check_numbers(l1=l1, tol=tol, mask_power=mask_power)
        count = _n_sources_arg(n_sources)
        options = _options(
            ClusterOptions,
            n_sources=count,
            n_components=components,
            beta=beta,
            l1=l1,
            features=features,
            mask_power=mask_power,
            max_iter=max_iter,
            tol=tol,
            seed=seed,
            phase_iters=phase_iters,
            factoriser=factoriser,
        )
        _check_numbers(start=start, duration=duration)
        kind = _subtype_arg(subtype, int16, int24, float32)
        fmt = _check_format(fmt, kind, filename)
        # auto: outputs are planned for the most sources it may find; each input writes the
        # first N of them once N is chosen
        most = max(defaults.CLUSTER_AUTO_SOURCES) if count == "auto" else int(count)
        names = [f"source{i + 1}" for i in range(most)]
        _dispatch(
            "cluster",
            inputs=inputs,
            files_from=files_from,
            recursive=recursive,
            null=null,
            names=names,
            sources=sources,
            stdout=stdout,
            name=name,
            plot=plot,
            plot_scale=plot_scale,
            subtype=kind,
            fmt=fmt,
            template=filename,
            outdir=outdir,
            options=options,
            model=None,
            overwrite=overwrite,
            jobs=jobs,
            scheduler=scheduler,
            json_out=json_out,
            quiet=quiet,
            verbose=verbose,
            channels=channels,
            clip_mode=clip_mode,
            start=start,
            duration=duration,
            save_model=None if save_model is None else str(save_model),
        )
    except NmfsepError as exc:
        raise _fail(exc) from None


def _n_sources_arg(value: str) -> int | str:
    """``-n``: a count >= 1, or ``auto``."""
    if value.strip().lower() == "auto":
        return "auto"
    try:
        n = int(value)
    except ValueError:
        n = 0
    top = limits.MAX_CLUSTER_SOURCES
    if not 1 <= n <= top:
        raise _usage(f"--n-sources must be a number from 1 to {top} or 'auto', got {value!r}")
    return n


def _warn(line: str) -> None:
    """A ``warning:`` line on stderr, shown with --quiet too (it concerns the result)."""
    print(_one_line(f"warning: {line}"), file=sys.stderr, flush=True)


def _shown(value: Any) -> Any:
    """A score for the table or CSV: NaN is missing (None); +-inf stays."""
    return None if isinstance(value, float) and value != value else value


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and abs(value) == float("inf"):
        return "inf" if value > 0 else "-inf"
    return f"{value:.2f}"


def _finite(value: Any) -> Any:
    """JSON has no inf/nan: report them as null."""
    if isinstance(value, float) and not (value == value and abs(value) != float("inf")):
        return None
    return value


@app.command(
    epilog=_examples(
        "nmfsep evaluate separated/mix/speech.wav --reference clean/speech.wav --mixture mix.wav",
        "nmfsep evaluate separated/mix/*.wav --reference-dir refs --json",
        "nmfsep evaluate separated/mix/speech.wav --reference clean/speech.wav --metrics stoi,pesq",
    )
)
@_guarded("evaluate")
def evaluate(
    estimates: Annotated[
        list[Path],
        typer.Argument(help="Estimated source files.", show_default=False, readable=False),
    ],
    reference: Annotated[
        list[Path] | None,
        typer.Option(
            "--reference", help="Reference (true source) file; repeat per source.", readable=False
        ),
    ] = None,
    reference_dir: Annotated[
        Path | None,
        typer.Option(
            "--reference-dir",
            help="Directory of references, matched to estimates by file name.",
            readable=False,
        ),
    ] = None,
    mixture: Annotated[
        Path | None,
        typer.Option(
            "--mixture", help="The unprocessed mixture: adds improvements over it.", readable=False
        ),
    ] = None,
    oracle: Annotated[
        bool,
        typer.Option(
            "--oracle",
            help="Add the oracle Wiener-mask score (the ceiling of masking); needs --mixture.",
        ),
    ] = False,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            "-m",
            help="STFT settings for --oracle (default: built-in model's).",
            readable=False,
        ),
    ] = None,
    no_bss: Annotated[
        bool, typer.Option("--no-bss", help="Skip BSS-eval SDR/SIR/SAR (SI-SDR only, no extra).")
    ] = False,
    metrics: Annotated[
        str,
        typer.Option(
            "--metrics",
            help="Comma-separated: sdr, sir, sar, si-sdr, stoi, estoi, pesq (stoi/estoi: "
            "pystoi, pesq: wide-band P.862.2 at 16 kHz; both in the 'eval' extra).",
        ),
    ] = "sdr,sir,sar,si-sdr",
    no_reference: Annotated[
        bool,
        typer.Option(
            "--no-reference",
            help="No clean reference: DNSMOS P.835 (SIG, BAK, OVRL) and P.808 scores, 1-5, "
            "from the offline models of the 'mos' extra (speechmos + onnxruntime).",
        ),
    ] = False,
    json_out: JsonOut = False,
    csv_out: Annotated[bool, typer.Option("--csv", help="Print CSV on stdout.")] = False,
) -> None:
    """Score separated files against references: SDR, SIR, SAR (BSS-eval), SI-SDR, improvements.

    Estimates are matched to references by file name (speech.wav with speech.wav) when every
    name matches, otherwise by the permutation with the best mean SI-SDR (cluster outputs).
    Multichannel files are scored on their channel mean.
    """
    from nmfsep.evaluation import METRICS, evaluate_files, match_references, require_metrics

    if json_out and csv_out:
        raise _usage("--json and --csv both write to stdout: give one")
    if no_reference:
        _evaluate_without_reference(estimates, json_out=json_out, csv_out=csv_out)
        return
    chosen = [m.strip().lower() for m in metrics.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in METRICS]
    if unknown or not chosen:
        raise _usage(
            f"--metrics: unknown {', '.join(unknown) or '(none)'}; use {','.join(METRICS)}"
        )
    perceptual = [m for m in chosen if m in ("stoi", "estoi", "pesq")]
    bss = not no_bss and any(m in chosen for m in ("sdr", "sir", "sar"))
    try:
        refs = match_references(estimates, reference or [], reference_dir=reference_dir)
        if oracle and mixture is None:
            raise _usage("--oracle needs --mixture")
        require_metrics(perceptual)  # a missing extra is a usage error, before any work
        rows, sr = evaluate_files(
            estimates,
            refs,
            mixture=mixture,
            oracle=oracle,
            model=_model_arg(model),
            bss=bss,
            perceptual=perceptual,
            warn=_warn,
        )
    except ParameterError as exc:
        raise _usage(exc.message) from None
    except NmfsepError as exc:
        raise _fail(exc) from None
    family = {"sdr": "sdr", "sir": "sir", "sar": "sar", "si_sdr": "si-sdr"}
    family.update({f"{k}_improvement": m for k, m in list(family.items())})
    family.update({f"oracle_{k}": m for k, m in list(family.items())})
    raw = [{k: v for k, v in row.items() if family.get(k, chosen[0]) in chosen} for row in rows]
    if json_out:
        rows = [{k: _finite(v) for k, v in row.items()} for row in raw]
        print(json.dumps({"command": "evaluate", "sr": sr, "sources": rows}, indent=2))
        return
    # the table and CSV say "inf" (an estimate equal to its reference), JSON has no such value
    rows = [{k: _shown(v) for k, v in row.items()} for row in raw]
    columns = [
        ("sdr", "SDR", "sdr"),
        ("sir", "SIR", "sir"),
        ("sar", "SAR", "sar"),
        ("si_sdr", "SI-SDR", "si-sdr"),
        ("sdr_improvement", "SDRi", "sdr"),
        ("si_sdr_improvement", "SI-SDRi", "si-sdr"),
        ("oracle_sdr", "oracle SDR", "sdr"),
        ("oracle_sdr_improvement", "oracle SDRi", "sdr"),
        ("stoi", "STOI", "stoi"),
        ("estoi", "ESTOI", "estoi"),
        ("pesq", "PESQ", "pesq"),
    ]
    shown = [
        (k, label)
        for k, label, metric in columns
        if metric in chosen and any(row.get(k) is not None for row in rows)
    ]
    if csv_out:
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(["reference", "estimate", *(k for k, _ in shown)])
        for row in rows:
            writer.writerow([row["reference"], row["estimate"], *(row.get(k) for k, _ in shown)])
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="separation quality (SDR/SIR/SAR in dB, STOI 0-1, PESQ 1-4.5)")
    table.add_column("source")
    table.add_column("estimate")
    for _, label in shown:
        table.add_column(label, justify="right")
    for row in rows:
        cells = [_cell(row.get(k)) for k, _ in shown]
        table.add_row(
            escape(_printable(row["name"])), escape(_printable(Path(row["estimate"]).name)), *cells
        )
    Console(emoji=False).print(table)


def _evaluate_without_reference(estimates: list[Path], *, json_out: bool, csv_out: bool) -> None:
    """``evaluate --no-reference``: DNSMOS of each file."""
    from nmfsep.evaluation import DNSMOS_KEYS, dnsmos_files, require_mos

    try:
        require_mos()  # a missing extra is a usage error, before any work
        rows = dnsmos_files(estimates, warn=_warn)
    except ParameterError as exc:
        raise _usage(exc.message) from None
    except NmfsepError as exc:
        raise _fail(exc) from None
    if json_out:
        print(json.dumps({"command": "evaluate", "metric": "dnsmos", "files": rows}, indent=2))
        return
    if csv_out:
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(["estimate", *DNSMOS_KEYS])
        for row in rows:
            writer.writerow([row["estimate"], *(row[k] for k in DNSMOS_KEYS)])
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="no-reference quality (DNSMOS, 1-5)")
    table.add_column("estimate")
    for label in ("SIG", "BAK", "OVRL", "P.808"):
        table.add_column(label, justify="right")
    for row in rows:
        cells = ["-" if row[k] is None else f"{row[k]:.2f}" for k in DNSMOS_KEYS]
        table.add_row(escape(_printable(Path(row["estimate"]).name)), *cells)
    Console(emoji=False).print(table)


@app.command(
    epilog=_examples(
        "nmfsep info default",
        "nmfsep info model.npz --json",
        "nmfsep info model.npz --plot bases.png",
    )
)
@_guarded("info")
def info(
    model: Annotated[
        str,
        typer.Argument(help="Model file, or 'default' for the built-in model.", show_default=False),
    ],
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Draw each source's bases into this PNG.", readable=False),
    ] = None,
    plot_scale: PlotScale = "log",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing --plot file.")
    ] = False,
    json_out: JsonOut = False,
) -> None:
    """Show what a model file holds."""
    from nmfsep.model import default_model, describe_model, load_model

    try:
        the_model = default_model() if model == "default" else load_model(model)
        summary = describe_model(the_model)
        if plot is not None:
            _require("matplotlib", "plot", "--plot")
            protect = [] if model == "default" else [model]
            _check_target(plot, "--plot", protect)
            if os.path.lexists(plot) and not overwrite:  # `--plot thesis.txt` replaced it
                raise _usage(f"--plot {plot}: exists (use --overwrite to replace it)")
            from nmfsep.plotting import plot_model

            plot_model(
                the_model, plot, protect=protect, scale=_plot_scale(plot_scale), replace=overwrite
            )
    except NmfsepError as exc:
        raise _fail(exc) from None
    if json_out:
        _print_json({"model": model, **summary})
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(emoji=False)
    # names from files are text, never rich markup ("[/x]" would crash, "[red]" colour)
    console.print(_printable(f"nmfsep model {model}"), markup=False, highlight=False)
    table = Table(show_header=True)
    table.add_column("source")
    table.add_column("bases", justify="right")
    for name, k in the_model.n_components.items():
        table.add_row(escape(_printable(name)), str(k))
    console.print(table)
    console.print(
        f"sample rate {the_model.sr} Hz, n_fft {the_model.stft.n_fft}, "
        f"hop {the_model.stft.hop_length}, window {the_model.stft.window}, "
        f"beta {the_model.beta}, bases normalised ({the_model.w_norm})",
        markup=False,
    )
    # the table, not the JSON (that is --json): scalars as they are, collections counted
    for key, value in summary.items():
        if key == "sources":
            continue
        if isinstance(value, dict | list | tuple):
            shown = f"{len(value)} entries (--json lists them)"
        else:
            shown = str(value)
        console.print(_printable(f"{key}: {shown}"), markup=False)


def _numba_cache_dir() -> None:
    """Give numba (librosa's and nmfsep's compiled kernels) a cache it can write.

    Without one (a read-only install and no writable home, e.g. a service user) numba fails
    with "cannot cache function" on every file. A ``NUMBA_CACHE_DIR`` that is set is kept when
    it can be written (an inherited one of another user cannot: the next candidate is used).
    """
    import tempfile

    given = os.environ.get("NUMBA_CACHE_DIR")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    for candidate in (
        *([given] if given else []),
        os.path.join(base, "nmfsep", "numba"),
        os.path.join(tempfile.gettempdir(), f"nmfsep-numba-{os.getuid()}"),
    ):
        try:
            os.makedirs(candidate, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK):
            os.environ["NUMBA_CACHE_DIR"] = candidate
            return


#: Said once on stderr before numba compiles nmfsep's kernels into an empty cache.
COMPILING = "compiling numerical kernels (first run only)..."


def _say_if_compiling(quiet: bool) -> None:
    """One line on stderr when nmfsep's numba kernels are not cached yet (a first run: about a
    second of compiling, which must not look like a stall). Cheap: one glob of the cache."""
    if quiet:
        return
    import glob

    cache = os.environ.get("NUMBA_CACHE_DIR")
    if not cache or not glob.glob(os.path.join(glob.escape(cache), "nmfsep_*", "_kernels.*.nbi")):
        print(COMPILING, file=sys.stderr, flush=True)


def _finishing() -> None:
    """The work is done and every output in place: a SIGTERM from here on has nothing left to
    stop, and would only turn a finished run (whose JSON may already say ``ok``) into exit 143.
    Only the console script's own handler is replaced (never a host process's)."""
    import signal

    with contextlib.suppress(ValueError):  # not the main thread: nothing to change
        if signal.getsignal(signal.SIGTERM) is _terminate:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _terminate(signum: int, frame: Any) -> None:
    # SIGTERM (kill, a job scheduler's time limit): unwind like Ctrl-C, so worker processes
    # are stopped and no partial output is left; exit 143 = 128 + SIGTERM.
    raise SystemExit(143)


def _is_usage_error(exc: BaseException) -> bool:
    """A click usage error (typer >= 0.2x vendors click as ``typer._click``, older ones use
    click itself: both exception classes are named ``ClickException`` in the MRO)."""
    return any(c.__name__ == "ClickException" for c in type(exc).__mro__) and hasattr(
        exc, "format_message"
    )


def _json_outside_command(status: str, error: str, code: int, command: str | None) -> None:
    """With ``--json``, the one JSON object a script reads on stdout, for what ends the program
    outside a command's own guard (the parser's refusal, a SIGTERM while parsing)."""
    # "--json=1" is refused by the parser, but the script that wrote it still reads stdout
    asked = any(a == "--json" or a.startswith("--json=") for a in sys.argv[1:])
    if not asked or _STATE["json_printed"]:
        return
    if command is None:
        command = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    payload = {"command": command, "version": __version__, "status": status, "ok": False,
               "error": error, "exit_code": code}  # fmt: skip
    with contextlib.suppress(Exception):
        _print_json(payload)


def main() -> None:
    """Console-script entry point: Ctrl-C exits with 130 and no traceback, SIGTERM with 143."""
    import signal

    signal.signal(signal.SIGTERM, _terminate)
    _numba_cache_dir()
    try:
        # not standalone: a usage error click finds itself (a value out of an option's range,
        # an unknown option) reaches us, to be said in one line like every other error, not in
        # a framed panel of several
        code = app(standalone_mode=False)
    except (typer.Abort, KeyboardInterrupt):  # (inside a command its guard said it already)
        print("interrupted", file=sys.stderr)
        _json_outside_command("interrupted", "interrupted", 130, None)
        sys.exit(130)
    except SystemExit as exc:
        if exc.code == 143:  # SIGTERM while the command line was still being parsed
            _json_outside_command("interrupted", "terminated (SIGTERM)", 143, None)
        raise
    except Exception as exc:
        if _is_usage_error(exc):
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} -h')" if ctx is not None else ""
            message = exc.format_message()  # type: ignore[attr-defined]
            print(_one_line(f"error: {message}{hint}"), file=sys.stderr)
            code = int(getattr(exc, "exit_code", 2))
            # refused while parsing, before the command's own --json guard
            _json_outside_command("error", message, code, getattr(ctx, "info_name", None))
            sys.exit(code)
        # a bug, not a user error: one line unless asked for the traceback
        if os.environ.get("NMFSEP_DEBUG"):
            raise
        print(
            f"error: internal error: {type(exc).__name__}: {exc} "
            "(please report it; NMFSEP_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
