package checkout.engines;

import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import java.util.List;
import java.util.concurrent.CountDownLatch;

/**
 * mongo-java-server on 127.0.0.1 for local mode and the tests.
 *
 * <pre>java -jar checkout-mongo-java-server.jar --port PORT [--backend memory|h2] [--h2-file FILE]</pre>
 *
 * The memory backend keeps nothing after a stop; the H2 backend keeps its data in one MVStore
 * file. It answers as MongoDB 4.4 (wire version 9), the oldest PyMongo 4.20 accepts: the
 * library's newest ServerVersion, MONGO_5_0, reports wire version 8, which PyMongo refuses.
 * SIGTERM stops it (the shutdown hook closes the backend, so the H2 file is written out).
 */
public final class JavaMongoServer {
    /** MongoDB 4.4's version and wire version, as buildInfo and hello answer them. */
    static final MongoVersion MONGO_4_4 = new MongoVersion() {
        @Override
        public List<Integer> getVersionArray() {
            return List.of(4, 4, 0);
        }

        @Override
        public int getWireVersion() {
            return 9;
        }
    };

    private JavaMongoServer() {}

    public static void main(String[] args) throws InterruptedException {
        String backendName = "memory";
        String h2File = null;
        String host = "127.0.0.1";
        int port = 0;
        for (int i = 0; i < args.length; i++) {
            String arg = args[i];
            String value = i + 1 < args.length ? args[i + 1] : null;
            switch (arg) {
                case "--backend" -> { backendName = require(arg, value); i++; }
                case "--h2-file" -> { h2File = require(arg, value); i++; }
                case "--host" -> { host = require(arg, value); i++; }
                case "--port" -> { port = Integer.parseInt(require(arg, value)); i++; }
                default -> fail("unknown argument " + arg);
            }
        }
        if (port <= 0) {
            fail("--port is required");
        }
        MongoBackend backend;
        switch (backendName) {
            case "memory" -> backend = new MemoryBackend();
            case "h2" -> {
                if (h2File == null) {
                    fail("--backend h2 needs --h2-file");
                }
                backend = new H2Backend(h2File);
            }
            default -> {
                fail("--backend must be memory or h2, not " + backendName);
                return;
            }
        }
        backend.version(MONGO_4_4);
        MongoServer server = new MongoServer(backend);
        server.bind(host, port);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.shutdown();
            stopped.countDown();
        }, "shutdown"));
        System.out.println("mongo-java-server " + backendName + " listening on " + host + ":" + port);
        System.out.flush();
        stopped.await();
    }

    private static String require(String arg, String value) {
        if (value == null) {
            fail(arg + " needs a value");
        }
        return value;
    }

    private static void fail(String message) {
        System.err.println("checkout-mongo-java-server: " + message);
        System.exit(2);
    }
}
