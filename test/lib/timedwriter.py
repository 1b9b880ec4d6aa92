"""Writers that time their transactions through pgmux, for the moves' test and benchmark.

    w = TimedWriter(lambda: psycopg.connect(dsn, autocommit=True), 1, [17, 42]).start()
    ... w.stop.set(); w.join(); w.between(t0, t1) -> seconds of the transactions that ended then

Each transaction bumps users.n of one of its user ids (in turn) and adds an event numbered
wid * 10,000,000 + its sequence (ids that rows loaded beforehand, below that, do not use).
"""
import threading
import time

import psycopg


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, len(s) * p // 100)] if s else float("nan")


class TimedWriter(threading.Thread):
    """samples: (end time, seconds) of each committed transaction; errors: what failed."""

    def __init__(self, connect, wid, user_ids):
        super().__init__(daemon=True)
        self.connect, self.wid, self.user_ids = connect, wid, user_ids
        self.samples, self.errors = [], []
        self.stop = threading.Event()

    def start(self):
        super().start()
        return self

    def run(self):
        seq = 0
        with self.connect() as c:
            while not self.stop.is_set():
                seq += 1
                uid = self.user_ids[seq % len(self.user_ids)]
                t0 = time.monotonic()
                try:
                    with c.transaction():
                        c.execute("UPDATE users SET n = n + 1 WHERE user_id = %s", (uid,))
                        c.execute("INSERT INTO events (id, user_id, seq) VALUES (%s, %s, %s)",
                                  (self.wid * 10_000_000 + seq, uid, seq))
                except psycopg.Error as e:
                    self.errors.append(f"{uid}: {e.sqlstate} {e}")
                    continue
                t1 = time.monotonic()
                self.samples.append((t1, t1 - t0))

    def between(self, t0, t1):
        return [d for t, d in self.samples if t0 <= t < t1]
