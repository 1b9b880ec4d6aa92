// node-postgres (`pg`) through pgmux: named prepared queries ({name, text, values}), which
// node-postgres parses once per connection and then only binds and executes.
// Usage: node node_client.js work|settings|ddl|sharded HOST PORT DBNAME TABLE; prints one JSON
// report (see test_drivers.py and test_sharded_drivers.py).
'use strict';
const { Client } = require('pg');

const CLIENTS = 6;
const ROUNDS = 30;
const DDL_ROUNDS = 10;
const SHARD_KEYS = 40;     // as in drvlib.py
const SHARD_UPDATES = 6;
const BIG = 4294967311;

const [phase, host, port, database, table] = process.argv.slice(2);
if (!table) {
  console.error('usage: node node_client.js work|settings|ddl|sharded HOST PORT DBNAME TABLE');
  process.exit(2);
}

async function connect() {
  const c = new Client({ host, port: Number(port), database, user: 'postgres',
                         connectionTimeoutMillis: 10000 });
  // a connection closed under a client is reported by its next query, not as a crash
  c.on('error', () => {});
  await c.connect();
  return c;
}

function describe(e) {
  return e.code ? `${e.code}: ${e.message}` : `${e.name}: ${e.message}`;
}

async function outcome(fn) {
  try {
    return await fn();
  } catch (e) {
    if (!e.code) throw e;
    return `error:${e.code}`;
  }
}

// Runs fn(i) for every client at once; returns [errors, results].
async function runClients(n, fn) {
  const errors = [];
  const results = await Promise.all(Array.from({ length: n }, async (_, i) => {
    try {
      return await fn(i);
    } catch (e) {
      errors.push(`client ${i}: ${describe(e)}`);
      return null;
    }
  }));
  return [errors, results];
}

function shapes(perClient) {
  const seen = new Map();
  for (const s of perClient) {
    if (!s) continue;
    for (const [k, v] of s) seen.set(k, v);
  }
  return [...seen.values()].sort((x, y) => x[0] - y[0] || (x[1] ?? -1) - (y[1] ?? -1));
}

async function work() {
  const pids = new Set();
  const [errors, results] = await runClients(CLIENTS, async (i) => {
    let mismatches = 0;
    const c = await connect();
    try {
      for (let r = 0; r < ROUNDS; r++) {
        const aid = 1 + Math.floor(Math.random() * 100000);
        const res = await c.query({
          name: 'account',
          text: 'SELECT aid, bid, pg_backend_pid() AS pid FROM pgbench_accounts WHERE aid = $1',
          values: [aid] });
        const row = res.rows[0];
        if (row.aid !== aid || row.bid !== 1) mismatches++;
        pids.add(row.pid);
        const sum = await c.query({ name: 'sum', text: 'SELECT $1::int + $2::int AS s',
                                    values: [aid, i] });
        if (sum.rows[0].s !== aid + i) mismatches++;
      }
      const ins = { name: 'ins', text: `INSERT INTO ${table} (client, n) VALUES ($1, $2)` };
      for (let n = 0; n < 30; n++) await c.query({ ...ins, values: [i, n] });
      await c.query('BEGIN');
      for (let n = 30; n < 35; n++) await c.query({ ...ins, values: [i, n] });
      const seen = await c.query({
        name: 'count', text: `SELECT count(*)::int AS n FROM ${table} WHERE client = $1`,
        values: [i] });
      if (seen.rows[0].n !== 35) mismatches++;
      await c.query('COMMIT');
    } finally {
      await c.end();
    }
    return mismatches;
  });
  return { errors, mismatches: results.reduce((a, r) => a + (r || 0), 0),
           pids: [...pids].sort((x, y) => x - y), rows_per_client: 35 };
}

async function settings() {
  const a = await connect();
  const b = await connect();
  await a.query('SET search_path TO drvpath, public');
  await a.query("SET statement_timeout = '150ms'");
  const show = async (c, what) => (await c.query({ name: `show_${what}`,
                                                    text: `SHOW ${what}` })).rows[0][what];
  const state = async (c) => ({
    search_path: await show(c, 'search_path'),
    statement_timeout: await show(c, 'statement_timeout'),
    marker: await outcome(async () => (await c.query({
      name: 'marker', text: 'SELECT v FROM marker' })).rows[0].v),
  });
  const roundsA = [];
  const roundsB = [];
  for (let r = 0; r < 3; r++) {
    roundsA.push(await state(a));
    roundsB.push(await state(b));
  }
  const sleep = (c) => outcome(async () => {
    await c.query('SELECT pg_sleep(0.4)');
    return 'ok';
  });
  const sleepA = await sleep(a);
  const sleepB = await sleep(b);
  await b.query('BEGIN');
  await b.query("SET LOCAL statement_timeout = '5s'");
  const localInside = (await b.query('SHOW statement_timeout')).rows[0].statement_timeout;
  await b.query('COMMIT');
  const localAfter = (await b.query('SHOW statement_timeout')).rows[0].statement_timeout;
  const aAgain = await state(a);
  await a.query('RESET statement_timeout');
  const aReset = (await a.query('SHOW statement_timeout')).rows[0].statement_timeout;
  await a.end();
  await b.end();
  return { a: [...roundsA, aAgain], b: roundsB, sleep_a: sleepA, sleep_b: sleepB,
           local_inside: localInside, local_after: localAfter, a_reset: aReset };
}

async function ddl() {
  const q = { name: 'ddl_select', text: `SELECT * FROM ${table} WHERE id = $1` };
  const run = async (c) => {
    const seen = new Map();
    for (let k = 0; k < DDL_ROUNDS; k++) {
      const res = await c.query({ ...q, values: [k % 10 + 1] });
      const shape = [res.fields.length, res.fields.length > 2 ? res.rows[0].b : null];
      seen.set(JSON.stringify(shape), shape);
    }
    return seen;
  };
  const beforeConns = [];
  for (let i = 0; i < CLIENTS; i++) beforeConns.push(await connect());
  const [errorsBefore, before] = await runClients(CLIENTS, (i) => run(beforeConns[i]));
  for (const c of beforeConns.slice(1)) await c.end();
  const alter = await connect();
  await alter.query(`ALTER TABLE ${table} ADD COLUMN b int DEFAULT 7`);
  await alter.end();
  const [errorsAfter, after] = await runClients(CLIENTS, async () => {
    const c = await connect();
    try {
      return await run(c);
    } finally {
      await c.end();
    }
  });
  const old = beforeConns[0];
  const newStmt = await outcome(async () => (await old.query({
    name: 'ddl_select_new', text: `SELECT *, 1 AS one FROM ${table} WHERE id = $1`,
    values: [1] })).fields.length);
  const oldStmt = await outcome(async () => (await old.query({ ...q, values: [1] }))
    .fields.length);
  await old.end();
  return { errors_before: errorsBefore, errors_after: errorsAfter,
           before: shapes(before), after: shapes(after),
           new_stmt_cols: newStmt, old_stmt_cols: oldStmt };
}

// Client i's n-th key in the sharded phase: drvlib.sharded_key (below 2**53, exact here).
function shardedKey(i, n) {
  const base = i * 1000 + n + 1;
  return [base, base * BIG, -base][n % 3];
}

// Rows for many keys through a sharded database: named prepared inserts and updates, unnamed
// parameterized reads, each row read back by its key, a few updated in a transaction.
async function sharded() {
  const [errors, results] = await runClients(CLIENTS, async (i) => {
    let mismatches = 0;
    const c = await connect();
    const ins = { name: 'sh_ins',
                  text: `INSERT INTO ${table} (user_id, client, name) VALUES ($1, $2, $3)` };
    const upd = { name: 'sh_upd', text: `UPDATE ${table} SET name = name || '+' WHERE user_id = $1` };
    const sel = `SELECT client, name FROM ${table} WHERE user_id = $1`;
    const same = (row, name) => row !== undefined && row.client === i && row.name === name;
    try {
      const keys = Array.from({ length: SHARD_KEYS }, (_, n) => shardedKey(i, n));
      for (let n = 0; n < keys.length; n++) {
        await c.query({ ...ins, values: [keys[n], i, `c${i} n${n}`] });
      }
      for (let n = 0; n < keys.length; n++) {
        const res = await c.query(sel, [keys[n]]);
        if (!same(res.rows[0], `c${i} n${n}`)) mismatches++;
      }
      for (let n = 0; n < SHARD_UPDATES; n++) {
        await c.query('BEGIN');
        await c.query({ ...upd, values: [keys[n]] });
        const res = await c.query(sel, [keys[n]]);
        await c.query('COMMIT');
        if (!same(res.rows[0], `c${i} n${n}+`)) mismatches++;
      }
    } finally {
      await c.end();
    }
    return mismatches;
  });
  return { errors, mismatches: results.reduce((a, r) => a + (r || 0), 0) };
}

const phases = { work, settings, ddl, sharded };
phases[phase]().then((result) => {
  console.log(JSON.stringify(result));
}, (e) => {
  console.error(describe(e));
  process.exit(1);
});
