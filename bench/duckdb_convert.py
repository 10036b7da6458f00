"""The peer for `bench/ingest`: DuckDB converting the same export files to Parquet (zstd),
one COPY per file, as an analyst would without supportlake. Prints JSON: records, seconds."""
import json
import os
import sys
import time

import duckdb

store, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
con = duckdb.connect()
records = 0
start = time.perf_counter()
for name in sorted(os.listdir(store)):
    path = os.path.join(store, name)
    stem, ext = os.path.splitext(name)
    if ext == ".jsonl":
        source = f"read_json_auto('{path}', format='newline_delimited', maximum_object_size=16777216)"
    elif ext == ".csv":
        source = f"read_csv_auto('{path}')"
    else:
        continue  # the small REST envelopes are not part of the measured volume
    target = os.path.join(out, f"{stem}.parquet")
    con.execute(f"COPY (SELECT * FROM {source}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)")
    records += con.execute(f"SELECT count(*) FROM '{target}'").fetchone()[0]
print(json.dumps({"records": records, "seconds": time.perf_counter() - start, "threads": con.execute("SELECT current_setting('threads')").fetchone()[0]}))
