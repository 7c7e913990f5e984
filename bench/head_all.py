"""List a bucket and HeadObject every key, 16 at a time (bench/run.sh's direct row of
workload 7: what fetching every object's metadata costs a plain client)."""
import sys
from concurrent.futures import ThreadPoolExecutor

import botocore.config
import botocore.session

ep, bucket = sys.argv[1:]
c = botocore.session.get_session().create_client(
    "s3", endpoint_url=ep, region_name="us-east-1", config=botocore.config.Config(max_pool_connections=16)
)
keys = [o["Key"] for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket) for o in page.get("Contents", [])]
with ThreadPoolExecutor(16) as pool:
    list(pool.map(lambda k: c.head_object(Bucket=bucket, Key=k), keys))
