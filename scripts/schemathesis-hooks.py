"""Schemathesis hooks for wameter's API (crates/cli/tests/openapi.rs).

`POST /v1/events` takes NDJSON, a media type schemathesis has no serializer
for: its generated string bodies are sent as they are, like text/plain.
"""

import schemathesis

schemathesis.serializer.alias("application/x-ndjson", "text/plain")


@schemathesis.deserializer("application/vnd.apache.parquet")
def parquet(ctx, response):
    """A Parquet answer must be a Parquet file: it starts and ends with PAR1."""
    body = response.content
    if body[:4] != b"PAR1" or body[-4:] != b"PAR1":
        raise ValueError(f"not a Parquet file: {body[:16]!r}")
    return body.decode("latin-1")
