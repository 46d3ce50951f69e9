"""Thin S3 I/O with bounded memory: streamed multipart upload and streamed, hashed download."""

from __future__ import annotations

import hashlib
import json
import zlib

PART_SIZE = 8 * 1024 * 1024  # S3 parts must be >= 5 MiB (except the last)
MAX_OUT = 4 * 1024 * 1024  # most decompressed bytes held at once by a reader


class S3Writer:
    """File-like sink: bytes written are uploaded in parts; sha256 and size are tracked."""

    def __init__(self, client, bucket: str, key: str, part_size: int = PART_SIZE, progress=None):
        self.client, self.bucket, self.key, self.part_size = client, bucket, key, part_size
        self.progress = progress
        self.buf = bytearray()
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.parts: list[dict] = []
        self.upload_id = None

    def write(self, data) -> int:
        self.buf += data
        self.sha256.update(data)
        self.size += len(data)
        if len(self.buf) >= self.part_size:
            self._flush_part()
        return len(data)

    def _flush_part(self):
        if self.upload_id is None:
            self.upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key)["UploadId"]
        n = len(self.parts) + 1
        resp = self.client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=n, Body=bytes(self.buf)
        )
        self.parts.append({"ETag": resp["ETag"], "PartNumber": n})
        self.buf = bytearray()
        if self.progress and n % 8 == 0:
            self.progress(f"{self.key}: {self.size // (1024 * 1024)} MiB compressed uploaded so far")

    def flush(self):
        pass

    def close(self) -> str:
        """Finish the upload; return the sha256 hex of everything written."""
        if self.upload_id is None:
            self.client.put_object(Bucket=self.bucket, Key=self.key, Body=bytes(self.buf))
        else:
            if self.buf:
                self._flush_part()
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
            )
        self.buf = bytearray()
        return self.sha256.hexdigest()

    def abort(self):
        if self.upload_id is not None:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
            except Exception:  # noqa: BLE001 - the original error is what matters
                pass


class GzipWriter:
    """Compress into ``sink`` (an S3Writer) as a gzip stream."""

    def __init__(self, sink, level: int = 6):
        self.sink = sink
        self.z = zlib.compressobj(level, zlib.DEFLATED, 31)

    def write(self, data) -> int:
        if isinstance(data, str):
            data = data.encode("utf-8")
        out = self.z.compress(data)
        if out:
            self.sink.write(out)
        return len(data)

    def close(self):
        self.sink.write(self.z.flush())


class TableFileError(RuntimeError):
    """A table file is missing, corrupted or does not match the manifest."""


class S3GzipReader:
    """File-like source for COPY FROM: streams an object, gunzips it, checks its sha256.

    ``read`` returns decompressed bytes; at the end ``verify()`` raises if the object's
    sha256 differs from the manifest's. The header line is checked against ``columns``.
    """

    def __init__(
        self,
        client,
        bucket: str,
        key: str,
        *,
        sha256: str,
        columns: list[str],
        chunk: int = 1024 * 1024,
        body=None,
        progress=None,
    ):
        self.bucket, self.key, self.expected = bucket, key, sha256
        self.progress, self.delivered, self.next_report = progress, 0, 256 * 1024 * 1024
        if body is not None:  # a local copy spooled (and already verified) by verify_files
            self.body = body
        else:
            try:
                self.body = client.get_object(Bucket=bucket, Key=key)["Body"]
            except Exception as exc:  # noqa: BLE001 - re-raised with the object named
                raise TableFileError(f"s3://{bucket}/{key}: cannot read table file: {exc}") from exc
        self.chunk = chunk
        self.h = hashlib.sha256()
        self.z = zlib.decompressobj(31)
        self.pending = b""
        self.pos = 0
        self.eof = False
        self.columns = columns
        self.header_checked = False

    def _fill(self):
        # decompressed output is capped per call (max_length): a highly compressible file
        # must not turn one compressed chunk into hundreds of MB in memory
        while not self.pending and not self.eof:
            if self.z.unconsumed_tail:
                try:
                    self.pending = self.z.decompress(self.z.unconsumed_tail, MAX_OUT)
                except zlib.error as exc:
                    raise TableFileError(f"s3://{self.bucket}/{self.key}: corrupt gzip: {exc}") from None
                continue
            raw = self.body.read(self.chunk)
            if not raw:
                self.eof = True
                try:
                    self.pending = self.z.flush()
                except zlib.error as exc:
                    raise TableFileError(f"s3://{self.bucket}/{self.key}: corrupt gzip: {exc}") from None
                if not self.z.eof:
                    raise TableFileError(f"s3://{self.bucket}/{self.key}: truncated gzip stream")
                break
            self.h.update(raw)
            try:
                self.pending = self.z.decompress(raw, MAX_OUT)
            except zlib.error as exc:
                raise TableFileError(f"s3://{self.bucket}/{self.key}: corrupt gzip: {exc}") from None

    def _check_header(self):
        buf = b""
        while b"\n" not in buf:
            self._fill()
            if not self.pending:
                break
            buf += self.pending
            self.pending = b""
        self.pending = buf + self.pending
        line = buf.split(b"\n", 1)[0].decode("utf-8", "replace").rstrip("\r")
        got = [c.strip('"') for c in line.split(",")] if line else []
        if got != list(self.columns):
            raise TableFileError(
                f"s3://{self.bucket}/{self.key}: header {got} does not match the manifest columns {list(self.columns)}"
            )
        self.header_checked = True

    def read(self, size: int = -1) -> bytes:
        # pending[pos:] is what is left of the last decompressed chunk; slicing from an offset
        # keeps each read O(size) (re-slicing the remainder would be quadratic per chunk)
        if not self.header_checked:
            self._check_header()
        if self.pos >= len(self.pending):
            self.pending, self.pos = b"", 0
            self._fill()
        if size is None or size < 0:
            size = len(self.pending) - self.pos
        out = self.pending[self.pos : self.pos + size]
        self.pos += len(out)
        self.delivered += len(out)
        if self.progress and self.delivered >= self.next_report:
            self.next_report += 256 * 1024 * 1024
            self.progress(f"{self.key}: {self.delivered // (1024 * 1024)} MiB of CSV loaded so far")
        return out

    def readline(self, size: int = -1) -> bytes:  # psycopg2 only uses read(); for completeness
        return self.read(size)

    def verify(self):
        while not self.eof:
            self.pending, self.pos = b"", 0
            self._fill()
        got = self.h.hexdigest()
        if got != self.expected:
            raise TableFileError(
                f"s3://{self.bucket}/{self.key}: sha256 {got} does not match the "
                f"manifest's {self.expected}: refusing to import"
            )


class CsvRecordCounter:
    """Counts the records of a gzip CSV stream (header excluded) without parsing fields.

    A newline ends a record unless it lies inside a quoted field; inside quotes the number of
    ``"`` seen so far is odd (an escaped ``""`` adds two), so only newlines at an even quote
    count end records. Memory stays at one decompressed chunk.
    """

    def __init__(self):
        self.z = zlib.decompressobj(31)
        self.newlines = 0
        self.in_quotes = False

    def _scan(self, data: bytes) -> None:
        parts = data.split(b'"')
        for i, part in enumerate(parts):
            if i:
                self.in_quotes = not self.in_quotes
            if not self.in_quotes:
                self.newlines += part.count(b"\n")

    def feed(self, raw: bytes) -> None:
        data = self.z.decompress(raw, MAX_OUT)
        while True:
            self._scan(data)
            if not self.z.unconsumed_tail:
                break
            data = self.z.decompress(self.z.unconsumed_tail, MAX_OUT)

    def records(self) -> int:
        try:
            self._scan(self.z.flush())
        except zlib.error:
            pass  # a corrupt file fails its sha256 check
        return max(self.newlines - 1, 0)


def object_sha256(client, bucket: str, key: str, chunk: int = 1024 * 1024, spool=None, counter=None) -> str:
    """sha256 of an object, streamed; the bytes are also written to ``spool`` and fed to
    ``counter`` (a CsvRecordCounter) if given."""
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
    except Exception as exc:  # noqa: BLE001
        raise TableFileError(f"s3://{bucket}/{key}: cannot read table file: {exc}") from exc
    h = hashlib.sha256()
    while True:
        b = body.read(chunk)
        if not b:
            return h.hexdigest()
        h.update(b)
        if spool is not None:
            spool.write(b)
        if counter is not None:
            try:
                counter.feed(b)
            except zlib.error:
                counter = None  # corrupt: the sha256 comparison names the problem


def put_json(client, bucket: str, key: str, obj) -> None:
    client.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps(obj, indent=1, sort_keys=True, default=str).encode("utf-8"),
        ContentType="application/json",
    )


def get_json(client, bucket: str, key: str, *, missing_ok: bool = False):
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except client.exceptions.NoSuchKey:
        if missing_ok:
            return None
        raise
    except Exception as exc:  # noqa: BLE001
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        if missing_ok and code in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    return json.loads(body)
