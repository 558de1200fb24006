"""A result of the size given (bytes) uploaded by upload_result_data, then downloaded with
download_result_data, byte-exact (tests/dev_python.rs watches dev's peak memory meanwhile)."""

import hashlib
import sys
import time

from armonik.common import ResultStatus

from common import Client, check, done

size = int(sys.argv[1])
c = Client()
sid = c.session()
block = hashlib.sha256(b"armonik-wasm").digest() * (1 << 15)  # 1 MiB, not compressible
data = (block * (size // len(block) + 1))[:size]
result = c.results.create_results_metadata(["big"], sid)["big"].result_id
started = time.monotonic()
c.results.upload_result_data(result, sid, data)
print(f"uploaded {size} B in {time.monotonic() - started:.1f} s", flush=True)
got = c.results.get_result(result)
check(got.status == ResultStatus.COMPLETED and got.size == size,
      f"the result is COMPLETED with its size ({got.status!r}, {got.size})")
started = time.monotonic()
back = c.results.download_result_data(result, sid)
print(f"downloaded {len(back)} B in {time.monotonic() - started:.1f} s", flush=True)
check(len(back) == size, f"downloaded {len(back)} B of {size}")
check(back == data, "byte-exact")
done()
