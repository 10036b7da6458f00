"""Reads Delta tables of a supportlake lake with delta-rs's Python package (log) and pyarrow
(Parquet) — a second engine — and prints their row counts as JSON:
`python read_lake.py LAKE_DIR TABLE...`."""
import json
import os
import sys

from deltalake import DeltaTable

lake, tables = sys.argv[1], sys.argv[2:]
print(json.dumps({t: DeltaTable(f"{lake}/{t}").to_pyarrow_dataset().count_rows() for t in tables}), flush=True)
# deltalake 1.6 with pyarrow 26 sometimes aborts in its thread-pool teardown at interpreter
# exit ("terminate called without an active exception") after the work is done and printed;
# leave without that teardown so the exit code reflects the reading, not the shutdown.
os._exit(0)
