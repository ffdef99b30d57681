"""Object storage (``s3://bucket/key``): listing, small reads and checks, with errors in the user's terms.

DALI reads the image files and tar shards itself (its readers and ``fn.io.file.read`` take ``s3://`` URLs);
this module only lists buckets, reads index files and checks up front that the endpoint answers and the
objects exist, so a wrong bucket is one clear error before the first batch rather than a hang or a DALI
trace. Credentials, region and endpoint come from the standard AWS variables (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` for S3-compatible
stores), which DALI's S3 client reads too. Needs ``boto3`` (``pip install boto3``; the project's ``s3`` extra).
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence, TypeVar

from ..common.checks import install_hint

__all__ = ["is_s3", "split_url", "list_keys", "read_text_if_exists", "open_stream", "object_size",
           "write_bytes", "check_objects", "endpoint", "endpoint_url", "map_requests"]

T = TypeVar("T")
R = TypeVar("R")

CONNECT_TIMEOUT_S = 5.0
"""Seconds to wait for the S3 endpoint to accept a connection before calling it unreachable."""
READ_TIMEOUT_S = 60.0
"""Seconds to wait for an answer from the S3 endpoint."""
PARALLEL_REQUESTS = 16
"""Requests in flight at once where many objects are checked or opened (each waits mostly on the endpoint's
latency), and the client's pool of connections."""


def is_s3(path: Any) -> bool:
    """True for an ``s3://`` URL."""
    return isinstance(path, str) and path.startswith("s3://")


def split_url(url: str) -> tuple[str, str]:
    """``(bucket, key)`` of ``s3://bucket/key``."""
    rest = url[len("s3://"):]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise ValueError(f"'{url}' names no bucket (expected s3://BUCKET/KEY)")
    return bucket, key


def endpoint_url() -> Optional[str]:
    """The S3 endpoint the environment names: ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``; None for AWS's
    own."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def endpoint() -> str:
    """The S3 endpoint in use, for messages: :func:`endpoint_url`, or AWS's own."""
    return endpoint_url() or "AWS S3 (default endpoint)"


_SETTINGS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
             "AWS_DEFAULT_REGION", "AWS_PROFILE")
"""The environment variables a client depends on: a change makes a new one."""


def map_requests(function: Callable[[T], R], items: Sequence[T], parallel: bool = True) -> list[R]:
    """``[function(item) for item in items]``, :data:`PARALLEL_REQUESTS` items at a time where ``parallel`` (work
    that waits on an endpoint's or a disk's latency: one object after another costs a round trip each), the
    results in order; the error of the first item in order that fails is raised."""
    if not parallel or len(items) < 2:
        return [function(item) for item in items]
    with ThreadPoolExecutor(min(PARALLEL_REQUESTS, len(items)), thread_name_prefix="dali-multicrop-requests") as pool:
        return list(pool.map(function, items))


def _client() -> Any:
    """An S3 client for the current AWS settings, made once per settings (making one takes ~0.1 s, and a source
    of many shards asks for one per index file)."""
    return _client_for(tuple(os.environ.get(name) for name in _SETTINGS))


@functools.lru_cache(maxsize=4)
def _client_for(settings: tuple[Optional[str], ...]) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise ImportError(f"s3:// sources need boto3: {install_hint('boto3', 's3')}") from None
    config = Config(connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S,
                    retries={"max_attempts": 2, "mode": "standard"}, max_pool_connections=PARALLEL_REQUESTS)
    return boto3.client("s3", endpoint_url=settings[0] or None, config=config)


def _explain(exc: Exception, url: str) -> ValueError:
    """An S3 failure as a sentence naming the object, the bucket or the endpoint."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    bucket, key = split_url(url)
    if isinstance(exc, EndpointConnectionError):
        return ValueError(f"cannot reach the S3 endpoint {endpoint()} for '{url}' (connection refused or timed "
                          f"out after {CONNECT_TIMEOUT_S:g} s); check AWS_ENDPOINT_URL and the network")
    if isinstance(exc, NoCredentialsError):
        return ValueError(f"no AWS credentials for '{url}': set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code == "NoSuchBucket":
            return ValueError(f"bucket '{bucket}' does not exist at {endpoint()} (reading '{url}')")
        if code in ("404", "NoSuchKey", "NotFound"):
            return ValueError(f"'{url}' does not exist (no object '{key}' in bucket '{bucket}' at {endpoint()})")
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return ValueError(f"access to '{url}' denied ({code}); check the AWS credentials")
        return ValueError(f"S3 error {code} for '{url}': {exc}")
    return ValueError(f"S3 error for '{url}': {exc}")


def _bucket_exists(client: Any, bucket: str, url: str) -> None:
    try:
        client.head_bucket(Bucket=bucket)
    except Exception as exc:
        err = _explain(exc, url)
        if "Error" in getattr(exc, "response", {}) and str(exc.response["Error"].get("Code")) in ("404", "NoSuchBucket"):
            err = ValueError(f"bucket '{bucket}' does not exist at {endpoint()} (reading '{url}')")
        raise err from None


def list_keys(prefix_url: str) -> list[str]:
    """Every object below ``s3://bucket/prefix/`` as ``s3://`` URLs, sorted."""
    bucket, prefix = split_url(prefix_url)
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    client = _client()
    _bucket_exists(client, bucket, prefix_url)
    urls: list[str] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            urls.extend(f"s3://{bucket}/{obj['Key']}" for obj in page.get("Contents", ()))
    except Exception as exc:
        raise _explain(exc, prefix_url) from None
    return sorted(urls)


def read_text_if_exists(path: str) -> Optional[str]:
    """The text of a local file or S3 object, ``None`` when there is none."""
    if not is_s3(path):
        return Path(path).read_text() if os.path.isfile(path) else None
    bucket, key = split_url(path)
    client = _client()
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    except Exception as exc:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchKey", "NotFound"):
            return None
        raise _explain(exc, path) from None


def open_stream(url: str) -> tuple[Any, int]:
    """``(readable body, size in bytes)`` of an S3 object (close the body when done)."""
    bucket, key = split_url(url)
    try:
        answer = _client().get_object(Bucket=bucket, Key=key)
    except Exception as exc:
        raise _explain(exc, url) from None
    return answer["Body"], int(answer["ContentLength"])


def object_size(url: str) -> int:
    """Size of an S3 object in bytes."""
    bucket, key = split_url(url)
    try:
        return int(_client().head_object(Bucket=bucket, Key=key)["ContentLength"])
    except Exception as exc:
        raise _explain(exc, url) from None


def write_bytes(url: str, data: bytes) -> None:
    """Writes ``data`` to an S3 object."""
    bucket, key = split_url(url)
    try:
        _client().put_object(Bucket=bucket, Key=key, Body=data)
    except Exception as exc:
        raise _explain(exc, url) from None


def check_objects(urls: Iterable[str]) -> None:
    """``ValueError`` naming the first of ``urls`` whose endpoint, bucket or object is missing (the objects asked
    about :data:`PARALLEL_REQUESTS` at a time)."""
    urls = list(urls)
    if not urls:
        return
    client = _client()
    first_of: dict[str, str] = {}  # bucket -> its first URL, in order
    for url in urls:
        first_of.setdefault(split_url(url)[0], url)
    for bucket, url in first_of.items():
        _bucket_exists(client, bucket, url)

    def missing(url: str) -> Optional[ValueError]:
        bucket, key = split_url(url)
        try:
            client.head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            return _explain(exc, url)
        return None

    problem = next((p for p in map_requests(missing, urls) if p is not None), None)
    if problem is not None:
        raise problem
