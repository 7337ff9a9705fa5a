#!/usr/bin/env python3
"""Puts the generated asset set into a bucket of the S3-compatible test server, or removes it.

    s3_assets.py upload ENDPOINT BUCKET SITE_DIR
    s3_assets.py delete ENDPOINT BUCKET

Runs with the interpreter of the repository's .venv (scripts/setup.sh installs moto, which
brings boto3). Credentials come from AWS_* variables (scripts/start-moto.sh exports test ones).
Objects get the Content-Type a web server would send, so that nginx proxying the bucket and
cdn-origin (which derives it from the key) serve the same type.
"""

import mimetypes
import sys
from pathlib import Path

import boto3
from botocore.config import Config

EXTRA_TYPES = {".woff2": "font/woff2", ".woff": "font/woff", ".webp": "image/webp",
               ".mp4": "video/mp4", ".js": "text/javascript", ".br": "application/octet-stream",
               ".zst": "application/octet-stream"}


def client(endpoint):
    return boto3.client("s3", endpoint_url=endpoint,
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}))


def upload(endpoint, bucket, site):
    s3 = client(endpoint)
    s3.create_bucket(Bucket=bucket)
    root = Path(site)
    count = 0
    for path in sorted(root.rglob("*")):
        if path.is_file():
            key = path.relative_to(root).as_posix()
            ctype = EXTRA_TYPES.get(path.suffix) or mimetypes.guess_type(key)[0] or "application/octet-stream"
            # public-read: the nginx peer proxies the bucket without signing, as in front of a
            # public bucket; cdn-origin signs its requests either way.
            s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), ContentType=ctype,
                          ACL="public-read")
            count += 1
    print(f"s3_assets: {count} objects in s3://{bucket} at {endpoint}", file=sys.stderr)


def delete(endpoint, bucket):
    s3 = client(endpoint)
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
        s3.delete_bucket(Bucket=bucket)
    except s3.exceptions.NoSuchBucket:
        pass


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "upload":
        upload(*sys.argv[2:])
    elif len(sys.argv) == 4 and sys.argv[1] == "delete":
        delete(*sys.argv[2:])
    else:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        sys.exit(2)
