"""``bertcls predict MODEL_DIR --file INPUT --engine ray --output DIR``: the same predictions as the local
engine, computed on Ray Data, for inputs larger than one machine handles in reasonable time.

Reads top to bottom: setup (the model's labels and columns checked on the driver, Ray started or joined),
the pipeline (read -> ``map_batches`` with one ``TextClassifier`` replica per actor -> write), save (the
shards renamed into place). Ray Data does the reading, scheduling, back-pressure and writing; what is ours
is the per-batch prediction, ``predict_rows.predicted_rows``, the local engine's own, so both engines
write the same columns and values.

- Ray: ``RAY_ADDRESS`` set (``ray://head:10001`` or ``auto``) joins that cluster; otherwise the command
  starts a local Ray on this machine and stops it at the end. On a cluster, MODEL_DIR, the input and the
  output must be paths every node can read (shared storage, or ``s3://``/``gs://`` URIs for the data).
- Output: a directory of shard files (CSV, JSONL or Parquet; rows in input order across the shards' names,
  ``preserve_order``). A local output is written to ``DIR.partial`` and renamed when complete; an existing
  DIR is refused, never replaced.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from bertcls.core.errors import UserError
from bertcls.deploy.predict_rows import (
    check_clash,
    choose_prefix,
    input_fields,
    predicted_rows,
    prediction_columns,
)

HINT = "pip install 'bertcls[ray]'"
READERS = {
    "csv": "read_csv",
    "tsv": "read_csv",
    "jsonl": "read_json",
    "parquet": "read_parquet",
    "lines": "read_text",
}
SUFFIX = {"csv": ".csv", "jsonl": ".json", "parquet": ".parquet"}  # Ray names JSON Lines shards .json


def run(cfg) -> dict:
    """``cfg``: a ``predict.PredictConfig`` with ``engine == "ray"``."""
    try:
        import ray
    except ImportError:
        raise UserError(f"--engine ray needs Ray Data: {HINT}") from None
    from bertcls.classifier import TextClassifier
    from bertcls.core.data import Columns, check_columns

    # ---- setup: everything checkable on the driver fails before a Ray worker starts
    if cfg.encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise UserError(
            f"--encoding={cfg.encoding}: --engine ray reads UTF-8 only; convert the input with iconv"
        )
    in_fmt = input_format(cfg.file)
    out_fmt = (
        cfg.format if cfg.format != "auto" else {"parquet": "parquet", "jsonl": "jsonl"}.get(in_fmt, "csv")
    )
    row_fmt = "csv" if out_fmt == "csv" else "jsonl"  # JSON Lines and Parquet hold a top_k list per row
    final = None if "://" in cfg.output else Path(cfg.output)
    work = final.with_name(final.name + ".partial") if final else None
    for d in (final, work):
        if d is not None and d.exists():
            raise UserError(f"{d}: already exists; choose a new --output directory (nothing is deleted)")
    clf = TextClassifier.from_args(cfg)  # the model's labels and columns (and its one-line errors)
    text_col, pair_col, k = input_fields(cfg, clf.meta, len(clf.labels), in_fmt == "lines")
    del clf

    started = _start_ray(ray, cfg)
    try:
        ds = _read(ray, cfg.file, in_fmt)
        names = list(ds.schema().names)
        check_columns(Path(cfg.file), names, Columns(text=text_col, text_pair=pair_col, label=None), False)
        prefix = choose_prefix(cfg.output_prefix, names, k, row_fmt, cfg.file)
        predicted = prediction_columns(prefix, k, row_fmt)
        check_clash(cfg.file, names, predicted)
        workers = cfg.num_workers or _default_workers(ray, cfg)
        job = dict(cfg=cfg, text_col=text_col, pair_col=pair_col, k=k, row_fmt=row_fmt, prefix=prefix)

        # ---- the pipeline: read -> one classifier per actor -> write, streamed by Ray Data
        out = ds.map_batches(
            Predictor,
            fn_constructor_kwargs={"job": job},
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=cfg.threads or 1,
            batch_size=cfg.chunk_size,
            batch_format="pandas",
            udf_modifying_row_count=cfg.skip_empty,
        )
        target = str(work) if work else cfg.output
        _write(out, out_fmt, target)
    except BaseException as e:  # Ray wraps a worker's exception in its own; the user sees our one line
        if work is not None and work.exists():  # ours: it did not exist when the command started
            import shutil

            shutil.rmtree(work, ignore_errors=True)
        if not isinstance(e, Exception):
            raise
        raise _user_error(e, cfg.file) from None
    finally:
        if started:
            ray.shutdown()

    # ---- save: the complete shard directory takes the final name
    shards = 0
    if work is not None:
        shards = len([p for p in work.iterdir() if p.suffix == SUFFIX[out_fmt]])
        os.replace(work, final)
    return {
        "output": cfg.output,
        "shards": shards,
        "workers": workers,
        "format": out_fmt,
        "remote": final is None,
    }


class Predictor:
    """A Ray Data actor: one ``TextClassifier`` loaded once, predicting each pandas batch it is given
    through the local engine's row logic (same columns, rounding and errors)."""

    def __init__(self, job: dict) -> None:
        from bertcls.classifier import TextClassifier

        self.job = job
        cfg = job["cfg"]
        self.clf = TextClassifier.from_args(cfg)
        self.clf.batch_size = cfg.batch_size

    def __call__(self, batch):
        import pandas as pd

        job = self.job
        # Arrow nulls arrive as NaN/None; the local engine's empty cell is "", so they count as empty text
        records = batch.astype(object).where(batch.notna(), None).to_dict("records")
        # a worker sees a block, not the file: the row is named within its batch
        numbered = (
            (f"{i} of a Ray batch (--engine local names the file's line)", r)
            for i, r in enumerate(records, 1)
        )
        rows = predicted_rows(
            job["cfg"],
            self.clf,
            numbered,
            f"{job['cfg'].file}: row",
            job["text_col"],
            job["pair_col"],
            job["k"],
            job["row_fmt"],
            job["prefix"],
        )
        return pd.DataFrame(list(rows), columns=None if records else list(batch.columns))


def input_format(path: str) -> str:
    """The format of a file, or of the files of a directory (one format per input); directories and URIs
    (s3://, gs://, ...) are listed through pyarrow's file systems, the ones Ray Data reads with."""
    import pyarrow.fs as pafs

    from bertcls.core.readers import detect_format

    if "://" not in path and Path(path).is_file():
        return detect_format(Path(path))
    try:
        fs, root = pafs.FileSystem.from_uri(path) if "://" in path else (pafs.LocalFileSystem(), path)
        info = fs.get_file_info(root)
        if info.type == pafs.FileType.File:
            return detect_format(Path(root))
        if info.type != pafs.FileType.Directory:
            raise UserError(f"{path}: no such file or directory; give --file an existing file or directory")
        files = fs.get_file_info(pafs.FileSelector(root, recursive=False))
    except (OSError, ValueError, ImportError) as e:
        raise UserError(f"{path}: cannot be listed ({str(e).splitlines()[0]})") from None
    names = [Path(f.path).name for f in files if f.type == pafs.FileType.File]
    kinds = {detect_format(Path(n)) for n in names if not n.startswith((".", "_"))}
    if len(kinds) != 1:
        found = ", ".join(sorted(kinds)) or "no data files"
        raise UserError(f"{path}: a directory input needs files of one format (found {found})")
    return kinds.pop()


def _start_ray(ray, cfg) -> bool:
    """Use the Ray this process already has, join RAY_ADDRESS's cluster, or start a local one; True when
    this command started it (and so stops it)."""
    import logging

    import ray.data  # noqa: F401  (its import configures its loggers: the level is set after it)

    # Ray Data logs each stage (INFO) and a worker's failure (ERROR, with a trace) on stderr; the command's
    # own summary or one-line error says what happened
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)
    if ray.is_initialized():  # a Python caller's (or a test's) Ray: use it, leave it running
        return False
    address = os.environ.get("RAY_ADDRESS")
    quiet = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    if address:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        return False
    workers = cfg.num_workers or max(1, (os.cpu_count() or 1) // (cfg.threads or 1))
    # One CPU more than the actors reserve: Ray Data's read and write tasks need a CPU of their own, and
    # with every CPU held by a predictor actor the pipeline waits forever (seen on 2 cores).
    ray.init(num_cpus=workers * (cfg.threads or 1) + 1, **quiet)
    return True


def _default_workers(ray, cfg) -> int:
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(1, (cpus - 1) // (cfg.threads or 1))


def _read(ray, path: str, fmt: str):
    ray.data.DataContext.get_current().execution_options.preserve_order = True  # shards in input order
    reader = getattr(ray.data, READERS[fmt])
    if fmt == "tsv":
        import pyarrow.csv as pacsv

        return reader(path, parse_options=pacsv.ParseOptions(delimiter="\t"))
    if fmt == "jsonl":
        return reader(path, lines=True)
    return reader(path)


def _write(ds, fmt: str, target: str) -> None:
    if fmt == "csv":
        ds.write_csv(target)
    elif fmt == "jsonl":
        ds.write_json(target, force_ascii=False)
    else:
        ds.write_parquet(target)


def _user_error(e: BaseException, source: str) -> BaseException:
    """The UserError a Ray worker raised, a one-line error for input Arrow cannot parse, or the original
    exception for anything else (a bug: keep its trace). Ray sends a worker's exception back pickled
    inside its own, which drops ``__cause__``: the worker's error survives only as the last line of the
    traceback text Ray puts in the message, so that line is read when no object is left."""
    seen, stack = set(), [e]
    while stack:
        ex = stack.pop()
        if ex is None or id(ex) in seen:
            continue
        seen.add(id(ex))
        if isinstance(ex, UserError) and not type(ex).__name__.startswith("RayTaskError"):
            return UserError(str(ex))
        stack += [getattr(ex, "cause", None), ex.__cause__, ex.__context__]
    text = str(e)
    found = re.search(r"^bertcls\.core\.errors\.UserError: (.+)$", text, re.M)
    if found:
        return UserError(found.group(1))
    found = re.search(r"^pyarrow\.lib\.Arrow(?:Invalid|TypeError): (.+)$", text, re.M)
    if found:
        return UserError(
            f"{source}: cannot be read ({found.group(1)}); fix the file, or use --engine local, which names the line"
        )
    return e


def summarize(result: dict) -> str:
    where = "" if result["remote"] else f", {result['shards']} shard file(s)"
    return f"wrote {result['format']} predictions to {result['output']} ({result['workers']} Ray worker(s){where})"
