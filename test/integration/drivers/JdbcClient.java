// PostgreSQL JDBC through pgmux: PreparedStatements executed repeatedly (named server-side
// statements once prepareThreshold executions are reached), batches, DatabaseMetaData.
// Usage: java -cp postgresql.jar:DIR JdbcClient work|settings|ddl|login|sharded HOST PORT DBNAME
//        TABLE PREPARE_THRESHOLD; prints one JSON report (see test_drivers.py and
//        test_sharded_drivers.py).

import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentSkipListSet;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicInteger;

public class JdbcClient {
    static final int CLIENTS = 6;
    static final int ROUNDS = 30;
    static final int DDL_ROUNDS = 10;
    static final int METADATA_ROUNDS = 6;
    static final int SHARD_KEYS = 40;      // as in drvlib.py
    static final int SHARD_UPDATES = 6;
    static final long BIG = 4294967311L;

    static String url;
    static String table;
    static String prepareThreshold;

    interface ClientBody {
        Object run(int i) throws Exception;
    }

    interface Value {
        Object get() throws SQLException;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 6) {
            System.err.println("usage: JdbcClient work|settings|ddl|login|sharded HOST PORT DBNAME TABLE "
                               + "PREPARE_THRESHOLD");
            System.exit(2);
        }
        url = "jdbc:postgresql://" + args[1] + ":" + args[2] + "/" + args[3];
        table = args[4];
        prepareThreshold = args[5];
        Map<String, Object> result;
        switch (args[0]) {
        case "work": result = work(); break;
        case "settings": result = settings(); break;
        case "ddl": result = ddl(); break;
        case "login": result = login(); break;
        case "sharded": result = sharded(); break;
        default: throw new IllegalArgumentException(args[0]);
        }
        System.out.println(json(result));
    }

    static Connection connect() throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", "postgres");
        p.setProperty("prepareThreshold", prepareThreshold);
        p.setProperty("connectTimeout", "10");
        p.setProperty("ApplicationName", "pgmux-driver-test");
        return DriverManager.getConnection(url, p);
    }

    static String describe(Throwable e) {
        if (e instanceof SQLException && ((SQLException) e).getSQLState() != null) {
            return ((SQLException) e).getSQLState() + ": " + e.getMessage().split("\n")[0];
        }
        return e.getClass().getSimpleName() + ": " + e.getMessage();
    }

    static Object outcome(Value v) throws SQLException {
        try {
            return v.get();
        } catch (SQLException e) {
            if (e.getSQLState() == null) {
                throw e;
            }
            return "error:" + e.getSQLState();
        }
    }

    // Runs body(i) for every client in its own thread, all at once; errors collects one line
    // per client that failed.
    static List<Object> runClients(int n, ClientBody body, List<String> errors) throws Exception {
        List<Object> results = Collections.synchronizedList(new ArrayList<>());
        CyclicBarrier start = new CyclicBarrier(n);
        List<Thread> threads = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            final int id = i;
            Thread t = new Thread(() -> {
                try {
                    start.await();
                    results.add(body.run(id));
                } catch (Throwable e) {
                    errors.add("client " + id + ": " + describe(e));
                }
            });
            threads.add(t);
            t.start();
        }
        for (Thread t : threads) {
            t.join(60000);
        }
        return results;
    }

    static Map<String, Object> login() throws Exception {
        Map<String, Object> r = new LinkedHashMap<>();
        try (Connection c = connect(); PreparedStatement ps = c.prepareStatement("SELECT ? + 1")) {
            ps.setInt(1, 41);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                r.put("answer", rs.getInt(1));
            }
        }
        return r;
    }

    static Map<String, Object> work() throws Exception {
        Set<Integer> pids = new ConcurrentSkipListSet<>();
        Set<String> tables = new ConcurrentSkipListSet<>();
        Set<String> columns = new ConcurrentSkipListSet<>();
        AtomicInteger mismatches = new AtomicInteger();
        AtomicInteger batched = new AtomicInteger();
        List<String> errors = Collections.synchronizedList(new ArrayList<>());
        runClients(CLIENTS, i -> {
            try (Connection c = connect();
                 PreparedStatement account = c.prepareStatement(
                     "SELECT aid, bid, pg_backend_pid() FROM pgbench_accounts WHERE aid = ?");
                 PreparedStatement sum = c.prepareStatement("SELECT ?::int + ?::int");
                 PreparedStatement ins = c.prepareStatement(
                     "INSERT INTO " + table + " (client, n) VALUES (?, ?)");
                 PreparedStatement count = c.prepareStatement(
                     "SELECT count(*) FROM " + table + " WHERE client = ?")) {
                for (int r = 0; r < ROUNDS; r++) {
                    int aid = ThreadLocalRandom.current().nextInt(1, 100001);
                    account.setInt(1, aid);
                    try (ResultSet rs = account.executeQuery()) {
                        rs.next();
                        if (rs.getInt(1) != aid || rs.getInt(2) != 1) {
                            mismatches.incrementAndGet();
                        }
                        pids.add(rs.getInt(3));
                    }
                    sum.setInt(1, aid);
                    sum.setInt(2, i);
                    try (ResultSet rs = sum.executeQuery()) {
                        rs.next();
                        if (rs.getInt(1) != aid + i) {
                            mismatches.incrementAndGet();
                        }
                    }
                }
                // one batch: every Parse/Bind/Execute sent before a single Sync
                for (int n = 0; n < 30; n++) {
                    ins.setInt(1, i);
                    ins.setInt(2, n);
                    ins.addBatch();
                }
                for (int done : ins.executeBatch()) {
                    batched.addAndGet(done);
                }
                c.setAutoCommit(false);
                for (int n = 30; n < 35; n++) {
                    ins.setInt(1, i);
                    ins.setInt(2, n);
                    ins.executeUpdate();
                }
                count.setInt(1, i);
                try (ResultSet rs = count.executeQuery()) {
                    rs.next();
                    if (rs.getInt(1) != 35) {
                        mismatches.incrementAndGet();
                    }
                }
                c.commit();
                c.setAutoCommit(true);
                DatabaseMetaData md = c.getMetaData();
                for (int r = 0; r < METADATA_ROUNDS; r++) {
                    try (ResultSet rs = md.getTables(null, "public", "pgbench_%",
                                                     new String[] {"TABLE"})) {
                        while (rs.next()) {
                            tables.add(rs.getString("TABLE_NAME"));
                        }
                    }
                    try (ResultSet rs = md.getColumns(null, "public", "pgbench_accounts", "%")) {
                        while (rs.next()) {
                            columns.add(rs.getInt("ORDINAL_POSITION") + ":"
                                        + rs.getString("COLUMN_NAME") + ":"
                                        + rs.getString("TYPE_NAME"));
                        }
                    }
                }
            }
            return null;
        }, errors);
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("errors", errors);
        r.put("mismatches", mismatches.get());
        r.put("pids", new ArrayList<>(pids));
        r.put("rows_per_client", 35);
        r.put("batched", batched.get());
        r.put("tables", new ArrayList<>(tables));
        r.put("columns", new ArrayList<>(columns));
        return r;
    }

    // Client i's n-th key in the sharded phase: drvlib.sharded_key.
    static long shardedKey(int i, int n) {
        long base = i * 1000L + n + 1;
        return n % 3 == 0 ? base : n % 3 == 1 ? base * BIG : -base;
    }

    static boolean same(PreparedStatement sel, long key, int client, String name)
            throws SQLException {
        sel.setLong(1, key);
        try (ResultSet rs = sel.executeQuery()) {
            return rs.next() && rs.getInt(1) == client && name.equals(rs.getString(2));
        }
    }

    // Rows for many keys through a sharded database: PreparedStatements with setLong, each run
    // SHARD_KEYS times (past prepareThreshold, so as named server-side statements), each row
    // read back by its key, a few updated in a transaction.
    static Map<String, Object> sharded() throws Exception {
        AtomicInteger mismatches = new AtomicInteger();
        List<String> errors = Collections.synchronizedList(new ArrayList<>());
        runClients(CLIENTS, i -> {
            try (Connection c = connect();
                 PreparedStatement ins = c.prepareStatement(
                     "INSERT INTO " + table + " (user_id, client, name) VALUES (?, ?, ?)");
                 PreparedStatement sel = c.prepareStatement(
                     "SELECT client, name FROM " + table + " WHERE user_id = ?");
                 PreparedStatement upd = c.prepareStatement(
                     "UPDATE " + table + " SET name = name || '+' WHERE user_id = ?")) {
                for (int n = 0; n < SHARD_KEYS; n++) {
                    ins.setLong(1, shardedKey(i, n));
                    ins.setInt(2, i);
                    ins.setString(3, "c" + i + " n" + n);
                    ins.executeUpdate();
                }
                for (int n = 0; n < SHARD_KEYS; n++) {
                    if (!same(sel, shardedKey(i, n), i, "c" + i + " n" + n)) {
                        mismatches.incrementAndGet();
                    }
                }
                c.setAutoCommit(false);
                for (int n = 0; n < SHARD_UPDATES; n++) {
                    upd.setLong(1, shardedKey(i, n));
                    upd.executeUpdate();
                    if (!same(sel, shardedKey(i, n), i, "c" + i + " n" + n + "+")) {
                        mismatches.incrementAndGet();
                    }
                    c.commit();
                }
                c.setAutoCommit(true);
            }
            return null;
        }, errors);
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("errors", errors);
        r.put("mismatches", mismatches.get());
        return r;
    }

    static Map<String, Object> state(Connection c) throws SQLException {
        Map<String, Object> s = new LinkedHashMap<>();
        for (String what : new String[] {"search_path", "statement_timeout"}) {
            try (PreparedStatement ps = c.prepareStatement("SHOW " + what);
                 ResultSet rs = ps.executeQuery()) {
                rs.next();
                s.put(what, rs.getString(1));
            }
        }
        s.put("marker", outcome(() -> {
            try (PreparedStatement ps = c.prepareStatement("SELECT v FROM marker");
                 ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getString(1);
            }
        }));
        return s;
    }

    static String show(Connection c, String what) throws SQLException {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SHOW " + what)) {
            rs.next();
            return rs.getString(1);
        }
    }

    static Object sleep(Connection c) throws SQLException {
        return outcome(() -> {
            try (Statement st = c.createStatement()) {
                st.execute("SELECT pg_sleep(0.4)");
                return "ok";
            }
        });
    }

    static Map<String, Object> settings() throws Exception {
        Map<String, Object> r = new LinkedHashMap<>();
        try (Connection a = connect(); Connection b = connect()) {
            try (Statement st = a.createStatement()) {
                st.execute("SET search_path TO drvpath, public");
                st.execute("SET statement_timeout = '150ms'");
            }
            List<Object> roundsA = new ArrayList<>();
            List<Object> roundsB = new ArrayList<>();
            for (int k = 0; k < 3; k++) {
                roundsA.add(state(a));
                roundsB.add(state(b));
            }
            r.put("sleep_a", sleep(a));
            r.put("sleep_b", sleep(b));
            b.setAutoCommit(false);
            try (Statement st = b.createStatement()) {
                st.execute("SET LOCAL statement_timeout = '5s'");
            }
            r.put("local_inside", show(b, "statement_timeout"));
            b.commit();
            b.setAutoCommit(true);
            r.put("local_after", show(b, "statement_timeout"));
            roundsA.add(state(a));
            try (Statement st = a.createStatement()) {
                st.execute("RESET statement_timeout");
            }
            r.put("a_reset", show(a, "statement_timeout"));
            r.put("a", roundsA);
            r.put("b", roundsB);
        }
        return r;
    }

    // The distinct [column count, value of b] pairs one connection sees running query.
    static Set<List<Object>> runDdl(PreparedStatement ps) throws SQLException {
        Set<List<Object>> seen = new java.util.HashSet<>();
        for (int k = 0; k < DDL_ROUNDS; k++) {
            ps.setInt(1, k % 10 + 1);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                int cols = rs.getMetaData().getColumnCount();
                List<Object> shape = new ArrayList<>();
                shape.add(cols);
                shape.add(cols > 2 ? (Object) rs.getInt("b") : null);
                seen.add(shape);
            }
        }
        return seen;
    }

    @SuppressWarnings("unchecked")
    static List<Object> shapes(List<Object> perClient) {
        Set<String> keys = new TreeSet<>();
        List<Object> out = new ArrayList<>();
        for (Object s : perClient) {
            for (List<Object> shape : (Set<List<Object>>) s) {
                if (keys.add(shape.toString())) {
                    out.add(shape);
                }
            }
        }
        return out;
    }

    static Map<String, Object> ddl() throws Exception {
        String query = "SELECT * FROM " + table + " WHERE id = ?";
        List<Connection> beforeConns = new ArrayList<>();
        List<PreparedStatement> beforeStmts = new ArrayList<>();
        for (int i = 0; i < CLIENTS; i++) {
            Connection c = connect();
            beforeConns.add(c);
            beforeStmts.add(c.prepareStatement(query));
        }
        List<String> errorsBefore = Collections.synchronizedList(new ArrayList<>());
        List<Object> before = runClients(CLIENTS, i -> runDdl(beforeStmts.get(i)), errorsBefore);
        for (Connection c : beforeConns.subList(1, CLIENTS)) {
            c.close();
        }
        try (Connection c = connect(); Statement st = c.createStatement()) {
            st.execute("ALTER TABLE " + table + " ADD COLUMN b int DEFAULT 7");
        }
        List<String> errorsAfter = Collections.synchronizedList(new ArrayList<>());
        List<Object> after = runClients(CLIENTS, i -> {
            try (Connection c = connect(); PreparedStatement ps = c.prepareStatement(query)) {
                return runDdl(ps);
            }
        }, errorsAfter);
        Connection old = beforeConns.get(0);
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("errors_before", errorsBefore);
        r.put("errors_after", errorsAfter);
        r.put("before", shapes(before));
        r.put("after", shapes(after));
        r.put("new_stmt_cols", outcome(() -> {
            try (PreparedStatement ps = old.prepareStatement(
                     "SELECT *, 1 AS one FROM " + table + " WHERE id = ?")) {
                ps.setInt(1, 1);
                try (ResultSet rs = ps.executeQuery()) {
                    return rs.getMetaData().getColumnCount();
                }
            }
        }));
        r.put("old_stmt_cols", outcome(() -> {
            PreparedStatement ps = beforeStmts.get(0);
            ps.setInt(1, 1);
            try (ResultSet rs = ps.executeQuery()) {
                return rs.getMetaData().getColumnCount();
            }
        }));
        old.close();
        return r;
    }

    static String json(Object v) {
        if (v == null) {
            return "null";
        }
        if (v instanceof Number || v instanceof Boolean) {
            return v.toString();
        }
        if (v instanceof Map) {
            StringBuilder sb = new StringBuilder("{");
            for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                if (sb.length() > 1) {
                    sb.append(", ");
                }
                sb.append(json(e.getKey().toString())).append(": ").append(json(e.getValue()));
            }
            return sb.append("}").toString();
        }
        if (v instanceof Iterable) {
            StringBuilder sb = new StringBuilder("[");
            for (Object o : (Iterable<?>) v) {
                if (sb.length() > 1) {
                    sb.append(", ");
                }
                sb.append(json(o));
            }
            return sb.append("]").toString();
        }
        StringBuilder sb = new StringBuilder("\"");
        for (char ch : v.toString().toCharArray()) {
            if (ch == '"' || ch == '\\') {
                sb.append('\\').append(ch);
            } else if (ch < 0x20) {
                sb.append(String.format("\\u%04x", (int) ch));
            } else {
                sb.append(ch);
            }
        }
        return sb.append("\"").toString();
    }
}
