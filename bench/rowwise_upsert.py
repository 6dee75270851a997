"""The row-by-row baseline: how a pandas + psycopg2 exporter writes a day.

This is what the seed pipeline's PostgreSQL exporter (Mage.ai's) does with a
DataFrame and a unique constraint: one ``INSERT … ON CONFLICT (key) DO UPDATE``
statement per row, sent with ``cursor.executemany`` (psycopg2 runs it once per
row, one round trip each), committed at the end.

usage: rowwise_upsert.py CSV DSN TABLE   (prints one JSON line of timings)
"""

import json
import sys
import time

import pandas as pd
import psycopg2

COLUMNS = [
    "token_address",
    "from_address",
    "to_address",
    "value",
    "transaction_hash",
    "log_index",
    "block_timestamp",
    "block_number",
    "block_hash",
]
KEY = ["transaction_hash", "log_index"]


def main():
    csv_path, dsn, table = sys.argv[1:4]

    started = time.perf_counter()
    # Everything as text, as the exporter gets it from BigQuery's JSON; empty
    # fields become None (SQL NULL).
    frame = pd.read_csv(csv_path, names=COLUMNS, header=None, dtype=str, keep_default_na=False)
    frame = frame.replace({"": None})
    rows = list(frame.itertuples(index=False, name=None))
    read_s = time.perf_counter() - started

    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS if c not in KEY)
    sql = (
        f"INSERT INTO {table} ({', '.join(COLUMNS)}) "
        f"VALUES ({', '.join(['%s'] * len(COLUMNS))}) "
        f"ON CONFLICT ({', '.join(KEY)}) DO UPDATE SET {updates}"
    )

    connection = psycopg2.connect(dsn)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)
    connection.commit()
    upsert_s = time.perf_counter() - started
    connection.close()

    print(json.dumps({"rows": len(rows), "read_s": read_s, "upsert_s": upsert_s}))


if __name__ == "__main__":
    main()
