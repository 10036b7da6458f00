"""Runs supportlake's report SQL with DuckDB over the same Delta tables' Parquet files.

Usage: duckdb_reports.py LAKE_DIR REPORTS_JSON
REPORTS_JSON maps report name -> {"sql": expanded SQL text, "params": {name: [type, value]}}.
Tables are views over exactly the files of each table's current Delta version (from the
Delta log via the deltalake package), so DuckDB reads what supportlake reads. The views
(conversation_facts, ...) are created from pipeline/reports/views/*.sql unchanged.
Prints one JSON line per report: {"report", "seconds" (median of 3 after a warm-up), "rows",
"result": the rows, values normalised (numbers as floats rounded to 6 places) for comparison}.
"""
import datetime, json, os, statistics, sys, time

import duckdb
from deltalake import DeltaTable

def normalise(v):
    """Numbers (ints, floats, decimals, numeric strings) as rounded floats; the rest as text."""
    if v is None or isinstance(v, bool):
        return v
    try:
        return round(float(v), 6)
    except (TypeError, ValueError):
        return str(v)



def main():
    lake, reports_json = sys.argv[1], sys.argv[2]
    here = os.path.dirname(os.path.abspath(__file__))
    views_dir = os.path.join(here, "..", "pipeline", "reports", "views")

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for table in sorted(os.listdir(lake)):
        if not os.path.isdir(os.path.join(lake, table, "_delta_log")):
            continue
        files = DeltaTable(os.path.join(lake, table)).file_uris()
        if not files:
            continue
        listing = ", ".join("'" + f.replace("file://", "") + "'" for f in files)
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet([{listing}], hive_partitioning = true, union_by_name = true)")

    def body(path):
        return "\n".join(l for l in open(path).read().splitlines() if not l.startswith("--"))

    for view in ["intents", "turn_facts", "conversation_facts"]:
        con.execute(f"CREATE VIEW {view} AS " + body(os.path.join(views_dir, view + ".sql")))

    def value(kind, text):
        if kind == "timestamp":
            return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return {"int": int, "float": float}.get(kind, str)(text)

    for name, spec in json.load(open(reports_json)).items():
        params = {k: value(kind, text) for k, (kind, text) in spec["params"].items()}
        times, table = [], None
        for attempt in range(4):
            started = time.perf_counter()
            table = con.execute(spec["sql"], params).to_arrow_table()
            if attempt:
                times.append(time.perf_counter() - started)
        result = [{k: normalise(v) for k, v in row.items()} for row in table.to_pylist()]
        print(json.dumps({"report": name, "seconds": statistics.median(times), "rows": table.num_rows, "result": result}), flush=True)


if __name__ == "__main__":
    main()
