"""The results store: one root (local path or s3:// / gs:// URI via pyarrow.fs), atomic writes.

Every file is written under `<root>/_tmp/` first and moved into place when complete, so a
crashed writer never leaves a partial file inside a table directory. On object stores the
move is a server-side copy of a finished object. Readers only look inside table directories.

>>> import tempfile
>>> import pyarrow as pa
>>> s = Store(tempfile.mkdtemp())
>>> _ = s.write_table("runs", pa.table({"run_id": ["a"]}), partition=("corpus", "x"), name="a")
>>> s.exists("runs", partition=("corpus", "x"), name="a")
True
>>> s.read("runs").to_pylist()
[{'run_id': 'a', 'corpus': 'x'}]
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sergrad.errors import StoreError

TMP_DIR = "_tmp"
QUARANTINE_DIR = "_quarantine"
PARQUET_OPTIONS = {"compression": "zstd"}
log = logging.getLogger(__name__)


CONNECT_TIMEOUT_S = 10.0  # object stores: seconds to connect (URI `connect_timeout=` or env)
REQUEST_TIMEOUT_S = 60.0  # seconds for one request (URI `request_timeout=` or env)
S3_OPTIONS = ("region", "scheme", "endpoint_override", "anonymous", "allow_bucket_creation",
              "allow_bucket_deletion", "connect_timeout", "request_timeout")  # fmt: skip


def open_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, root path) of a store URI: the one place every command opens a store.

    Local paths resolve against the current directory. `s3://bucket/prefix?k=v&...` takes
    the options in S3_OPTIONS (e.g. `endpoint_override=host:9000&scheme=http`), with connect
    and request timeouts (defaults CONNECT_TIMEOUT_S / REQUEST_TIMEOUT_S, or the environment's
    SERGRAD_STORE_CONNECT_TIMEOUT / SERGRAD_STORE_REQUEST_TIMEOUT), so an endpoint that never
    answers fails in seconds; an unknown option is an error naming it. Other schemes (gs://,
    ...) go to pyarrow's `FileSystem.from_uri`.

    >>> fs, root = open_filesystem("s3://bucket/a/b?endpoint_override=127.0.0.1:9&scheme=http")
    >>> type(fs).__name__, root
    ('S3FileSystem', 'bucket/a/b')
    """
    if "://" not in uri:
        return pafs.LocalFileSystem(), str(Path(uri).resolve())
    if not uri.startswith("s3://"):
        return pafs.FileSystem.from_uri(uri)
    from urllib.parse import parse_qsl, urlsplit

    parts = urlsplit(uri)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(query) - set(S3_OPTIONS))
    if unknown:
        raise StoreError(
            f"store {uri!r}: unknown option {unknown[0]!r}; valid: {', '.join(S3_OPTIONS)}"
        )

    def seconds(key: str, env: str, default: float) -> float:
        raw = query.get(key) or os.environ.get(env) or default
        try:
            return float(raw)
        except ValueError:
            raise StoreError(f"store {uri!r}: {key} {raw!r} is not a number of seconds") from None

    flags = {k: query[k].lower() in ("1", "true", "yes") for k in S3_OPTIONS[3:6] if k in query}
    fs = pafs.S3FileSystem(
        region=query.get("region"),
        scheme=query.get("scheme", "https"),
        endpoint_override=query.get("endpoint_override"),
        connect_timeout=seconds("connect_timeout", "SERGRAD_STORE_CONNECT_TIMEOUT",
                                CONNECT_TIMEOUT_S),
        request_timeout=seconds("request_timeout", "SERGRAD_STORE_REQUEST_TIMEOUT",
                                REQUEST_TIMEOUT_S),
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=3),
        **flags,
    )  # fmt: skip
    return fs, f"{parts.netloc}{parts.path}".rstrip("/")


STORE_REF = "store:"  # prefix of a path inside the store, in configs (no store location)


def join_uri(store_uri: str, rel: str) -> str:
    """`s3://b/p?endpoint_override=x` + `a/b` -> `s3://b/p/a/b?endpoint_override=x`.

    >>> join_uri("s3://b/p?scheme=http", "inputs/x.parquet")
    's3://b/p/inputs/x.parquet?scheme=http'
    """
    if "://" not in store_uri:
        return str(Path(store_uri).resolve() / rel)
    base, _, query = store_uri.partition("?")
    return f"{base.rstrip('/')}/{rel}" + (f"?{query}" if query else "")


def absolute_uri(uri: str | os.PathLike) -> str:
    """A local store path made absolute against the current directory; URIs unchanged.

    Ray Tune runs each trial in its own working directory, so a relative path must be
    resolved where the user typed it (the driver), never in a worker.

    >>> absolute_uri("s3://b/p?endpoint_override=x")
    's3://b/p?endpoint_override=x'
    >>> absolute_uri("out/small") == str(Path.cwd() / "out" / "small")
    True
    """
    uri = str(uri)
    if "://" in uri:
        return uri
    return str(Path(uri).expanduser().resolve())


class Store:
    """A results root. `uri` is a local path or a pyarrow.fs URI (s3://bucket/prefix?...)."""

    def __init__(self, uri: str | os.PathLike, *, create: bool = True) -> None:
        """`create=False`: the store must exist already (readers: a typo creates nothing).

        Every command opens its store here (`open_filesystem`: timeouts, endpoint options).
        """
        self.uri = str(uri)
        try:
            self.fs, root = open_filesystem(self.uri)
            self.root = root.rstrip("/")
            if create:
                self.fs.create_dir(self.root, recursive=True)
            elif self.fs.get_file_info(self.root).type != pafs.FileType.Directory:
                raise StoreError(f"no store at {self.uri!r} (no such directory)")
        except (OSError, pa.ArrowException) as exc:
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"cannot open store {self.uri!r}: {exc}") from exc
        self.is_local = isinstance(self.fs, pafs.LocalFileSystem)

    def __repr__(self) -> str:
        return f"Store({self.uri!r})"

    # --- paths -------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return "/".join([self.root, *[p.strip("/") for p in parts if p]])

    def uri_of(self, ref: str) -> str:
        """A `store:rel/path` reference (or a plain path) as a readable URI / absolute path."""
        if not ref.startswith(STORE_REF):
            return ref
        rel = ref[len(STORE_REF) :]
        return self.path(rel) if self.is_local else join_uri(self.uri, rel)

    def table_dir(self, table: str, partition: tuple[str, str] | None = None) -> str:
        if partition is None:
            return self.path(table)
        key, value = partition
        return self.path(table, f"{key}={_safe(value)}")

    def file_path(self, table: str, *, partition: tuple[str, str] | None, name: str) -> str:
        return f"{self.table_dir(table, partition)}/{_safe(name)}.parquet"

    # --- writing -------------------------------------------------------------------------
    def _tmp_path(self, name: str) -> str:
        return self.path(TMP_DIR, f"{uuid.uuid4().hex}-{_safe(name)}.parquet")

    def _publish(self, tmp: str, final: str) -> None:
        self.fs.create_dir(final.rsplit("/", 1)[0], recursive=True)
        if self.is_local:
            os.replace(tmp, final)  # atomic on one filesystem
        else:
            self.fs.copy_file(tmp, final)  # a finished object appears in one PUT/COPY
            self.fs.delete_file(tmp)

    @contextlib.contextmanager
    def open_writer(
        self,
        table: str,
        schema: pa.Schema,
        *,
        partition: tuple[str, str] | None,
        name: str,
        options: dict | None = None,
    ) -> Iterator[pq.ParquetWriter]:
        """Stream row groups into a temp file; publish on success, delete on error.

        `options` are extra `pq.ParquetWriter` keyword arguments over PARQUET_OPTIONS.
        """
        final = self.file_path(table, partition=partition, name=name)
        tmp = self._tmp_path(name)
        self.fs.create_dir(self.path(TMP_DIR), recursive=True)
        try:
            sink = self.fs.open_output_stream(tmp)
        except (OSError, pa.ArrowException) as exc:
            raise StoreError(f"cannot write to store {self.uri!r}: {exc}") from exc
        writer = None
        try:
            writer = pq.ParquetWriter(sink, schema, **{**PARQUET_OPTIONS, **(options or {})})
            yield writer
            writer.close()
            sink.close()
            self._publish(tmp, final)
        except BaseException:
            with contextlib.suppress(Exception):
                if writer is not None:
                    writer.close()
            with contextlib.suppress(Exception):
                sink.close()
            with contextlib.suppress(Exception):
                self.fs.delete_file(tmp)
            raise

    def write_table(
        self, table: str, data: pa.Table, *, partition: tuple[str, str] | None, name: str
    ) -> str:
        """Write `data` atomically as one file; the partition column must not be in `data`."""
        if partition is not None and partition[0] in data.column_names:
            data = data.drop_columns([partition[0]])
        with self.open_writer(table, data.schema, partition=partition, name=name) as writer:
            writer.write_table(data)
        return self.file_path(table, partition=partition, name=name)

    def write_json(self, name: str, obj: object) -> None:
        tmp = self.path(TMP_DIR, f"{uuid.uuid4().hex}-{name.replace('/', '~')}")
        self.fs.create_dir(self.path(TMP_DIR), recursive=True)
        with self.fs.open_output_stream(tmp) as f:
            f.write(json.dumps(obj, indent=2, sort_keys=True).encode())
        self._publish(tmp, self.path(name))

    def read_json(self, name: str) -> object | None:
        if not self.exists_path(self.path(name)):
            return None
        with self.fs.open_input_stream(self.path(name)) as f:
            return json.loads(f.read().decode())

    # --- reading -------------------------------------------------------------------------
    def exists_path(self, path: str) -> bool:
        return self.fs.get_file_info(path).type != pafs.FileType.NotFound

    def exists(self, table: str, *, partition: tuple[str, str] | None, name: str) -> bool:
        return self.exists_path(self.file_path(table, partition=partition, name=name))

    def files(self, table: str) -> list[str]:
        base = self.path(table)
        if not self.exists_path(base):
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True))
        return sorted(
            i.path for i in infos if i.type == pafs.FileType.File and i.path.endswith(".parquet")
        )

    def dataset(self, table: str, files: list[str] | None = None):
        """The table's files as one `pyarrow.dataset.Dataset` (None without files); hive
        partition columns are strings (a run id of digits only stays a string).
        pyarrow.dataset is imported here: it pulls in pandas (0.3 s), which a sweep worker
        writing one record per job never needs."""
        import pyarrow.dataset as ds

        files = self.files(table) if files is None else files
        if not files:
            return None
        base = self.path(table)
        keys = [p.split("=", 1)[0] for p in files[0][len(base) + 1 :].split("/")[:-1] if "=" in p]
        return ds.dataset(
            files,
            filesystem=self.fs,
            format="parquet",
            partitioning=ds.partitioning(
                pa.schema([(k, pa.string()) for k in keys]), flavor="hive"
            ),
            partition_base_dir=base,
        )

    def read(self, table: str, *, columns: list[str] | None = None, filter=None) -> pa.Table:
        """Whole table (all partitions) as one pyarrow Table; empty table if none written.

        An unreadable file (truncated, not Parquet) is skipped with a warning naming it, so
        one bad file never hides the rest; its job counts as not done and is run again.
        """
        try:
            dset = self.dataset(table)  # reads the first file's schema
            if dset is None:
                return pa.table({})
            return dset.to_table(columns=columns, filter=filter)
        except (OSError, pa.ArrowException):
            good = [p for p in self.files(table) if self.readable(p, warn=True)]
        if not good:
            return pa.table({})
        return self.dataset(table, good).to_table(columns=columns, filter=filter)

    def readable(self, path: str, *, warn: bool = False) -> bool:
        """Whether `path` is a complete Parquet file (its footer parses)."""
        try:
            with self.fs.open_input_file(path) as f:
                pq.read_metadata(f)
            return True
        except (OSError, pa.ArrowException) as exc:
            if warn:
                log.warning("skipping unreadable file %s: %s", path, exc)
            return False

    def quarantine(self, path: str) -> str:
        """Move an unreadable file out of its table to `_quarantine/` (kept for inspection)."""
        rel = path[len(self.root) + 1 :] if path.startswith(self.root + "/") else path
        dest = self.path(QUARANTINE_DIR, f"{int(time.time())}-{rel.replace('/', '~')}")
        self.fs.create_dir(self.path(QUARANTINE_DIR), recursive=True)
        self.fs.move(path, dest)
        log.warning("moved unreadable file %s to %s", path, dest)
        return dest

    def clean_tmp(self, *, older_than_s: float) -> int:
        """Delete `_tmp/` entries older than `older_than_s` (left by killed writers)."""
        base = self.path(TMP_DIR)
        if not self.exists_path(base):
            return 0
        now, removed = time.time(), 0
        for info in self.fs.get_file_info(pafs.FileSelector(base, recursive=False)):
            if info.type != pafs.FileType.File:
                continue
            mtime = info.mtime.timestamp() if info.mtime is not None else now
            if now - mtime > older_than_s:
                with contextlib.suppress(OSError):
                    self.fs.delete_file(info.path)
                    removed += 1
        return removed

    def partition_values(self, table: str) -> list[str]:
        """Values of the partition key present for `table` (e.g. the run ids in updates/)."""
        base = self.path(table)
        if not self.exists_path(base):
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=False))
        return sorted(i.base_name.split("=", 1)[1] for i in infos if "=" in i.base_name)

    def open_input(self, path: str):
        return self.fs.open_input_file(path)

    def read_file(self, path: str, columns: list[str] | None = None) -> pa.Table:
        """One Parquet file of the store (`pq.ParquetFile`: unlike `pq.read_table` it does not
        import pyarrow.dataset and pandas, 0.3 s of every worker process)."""
        with self.open_input(path) as f:
            return pq.ParquetFile(f).read(columns=columns)


def readable_table_files(uri: str | os.PathLike, table: str) -> tuple[list[str], bool]:
    """(readable Parquet files of `table`, whether any was skipped) in a local store; each
    unreadable file is named in a warning. For readers (polars, DuckDB) given a file list."""
    store = Store(uri, create=False)
    files = store.files(table)
    good = [p for p in files if _readable_cached(store, p)]
    return good, len(good) != len(files)


_READABLE: dict[tuple[str, int, int], bool] = {}  # (path, size, mtime_ns) -> footer parses


def _readable_cached(store: Store, path: str) -> bool:
    """`store.readable`, checked once per file version in this process (a report scans the
    same tables many times); an unreadable file is named in a warning each time."""
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _READABLE:
        _READABLE[key] = store.readable(path)
    if not _READABLE[key]:
        log.warning("skipping unreadable file %s", path)
    return _READABLE[key]


def _safe(value: str) -> str:
    value = str(value)
    if not value or "/" in value or value.startswith(".") or value.startswith("_"):
        raise StoreError(f"invalid store name component {value!r}")
    return value
