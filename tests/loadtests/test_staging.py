"""The staging benchmark: it runs the real handler against both stores, verifies what they hold,
and its figures show each staged chunk crossing the store once."""

from __future__ import annotations

import argparse
from pathlib import Path

from amaro.services import Services
from loadtests import staging


async def test_small_requests_stage_each_chunk_once_on_both_stores(services: Services, tmp_path: Path) -> None:
    args = argparse.Namespace(size_mb=11.0, part_mib=5.0, request_mb=[0.5], local_only=False)
    result = await staging.measure(args, services, tmp_path)
    assert result["all_verified"]
    cases = {case["store"]: case for case in result["cases"]}
    assert cases["local"]["requests"] == cases["s3"]["requests"] == 22
    # In place: the staged chunks are the part's own bytes on disk, never read back; only the
    # partial chunk of each request goes to a small tail object.
    assert cases["local"]["store_read_per_uploaded_byte"] < 0.1
    assert cases["local"]["disk_written_per_uploaded_byte"] < 1.2
    # S3: every staged byte is written once as a segment and once in its part, and read once.
    assert 1.5 < cases["s3"]["store_written_per_uploaded_byte"] < 2.2
    assert 0.5 < cases["s3"]["store_read_per_uploaded_byte"] < 1.1
