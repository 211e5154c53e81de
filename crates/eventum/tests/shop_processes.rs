//! The shop as five processes — `eventum shop service orders|products|payments|
//! notifications|gateway`, each on its own PostgreSQL schema, talking only through a NATS
//! JetStream stream of their own — driven through the gateway's REST API and WebSocket:
//! seed 004's three scenarios, then a load of orders while service processes are
//! SIGKILLed and restarted. Every order must end in exactly one terminal state, and the
//! invariants must hold across the services' stores. Needs PostgreSQL and NATS with
//! JetStream (EVENTUM_TEST_POSTGRES_URL, EVENTUM_TEST_NATS_URL): fails, never skips.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventum_core::EventStore;
use eventum_postgres::{PgConfig, PgStore};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use common::{BIN, drain};

const SERVICES: [&str; 5] = ["orders", "products", "payments", "notifications", "gateway"];
const ADMIN_PASSWORD: &str = "admin-password";

fn pg_url() -> String {
    std::env::var("EVENTUM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn nats_url() -> String {
    std::env::var("EVENTUM_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// Fails the test, with how to fix it, when PostgreSQL or NATS is not there.
async fn require_servers() -> async_nats::Client {
    let pg = pg_url();
    let host_port = pg
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("127.0.0.1:5432")
        .to_owned();
    if let Err(e) = std::net::TcpStream::connect(&host_port) {
        panic!(
            "PostgreSQL is unreachable at {pg}: {e}\nStart it (`service postgresql start`) or set \
             EVENTUM_TEST_POSTGRES_URL; `.ci/run` starts it in CI."
        );
    }
    match async_nats::connect(nats_url()).await {
        Ok(c) => c,
        Err(e) => panic!(
            "NATS is unreachable at {}: {e}\nStart it (`nats-server -js`) or set \
             EVENTUM_TEST_NATS_URL; `.ci/run` starts it in CI.",
            nats_url()
        ),
    }
}

/// The five processes of one shop, on names unique to this run.
struct ShopProcesses {
    run: String,
    dir: tempfile::TempDir,
    children: HashMap<&'static str, (Child, Arc<Mutex<String>>)>,
    gateway: String,
}

impl ShopProcesses {
    fn start() -> ShopProcesses {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let mut shop = ShopProcesses {
            run: format!("sp{}", &id[id.len() - 12..]),
            dir: tempfile::tempdir().unwrap(),
            children: HashMap::new(),
            gateway: String::new(),
        };
        for service in SERVICES {
            shop.spawn(service);
        }
        shop
    }

    fn schema(&self, service: &str) -> String {
        format!("{}_{service}", self.run)
    }

    /// Starts `service` and waits for its ready line.
    // Children are killed and waited for in `kill` and `Drop`.
    #[allow(clippy::zombie_processes)]
    fn spawn(&mut self, service: &'static str) {
        let mut cmd = Command::new(BIN);
        cmd.args(["shop", "service", service, "--store", &pg_url()])
            .args(["--store-schema", &self.schema(service)])
            .args(["--store-pool-max", "4"])
            .arg("--data")
            .arg(self.dir.path().join(service))
            .args(["--bus", &nats_url(), "--bus-stream", &self.run])
            .args(["--bus-prefix", &self.run])
            // A killed service's unacknowledged messages come back this soon.
            .args(["--ack-wait-ms", "3000"]);
        if service == "gateway" {
            let listen = if self.gateway.is_empty() {
                "127.0.0.1:0".to_owned()
            } else {
                self.gateway.trim_start_matches("http://").to_owned()
            };
            cmd.args(["--listen", &listen, "--admin-password", ADMIN_PASSWORD])
                .args(["--hash-memory-kib", "64", "--hash-iterations", "1"])
                .args(["--no-demo", "--catalog-wait-ms", "20000"])
                .env("EVENTUM_SHOP_JWT_SECRET", "x".repeat(32));
        }
        let mut child = cmd
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn eventum shop service");
        let stderr = drain(child.stderr.take().unwrap());
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(" ready (") => break,
                Ok(line) if line.starts_with("eventum shop gateway listening on ") => {
                    let url = line.split(' ').nth(5).unwrap().to_owned();
                    self.gateway = url;
                    break;
                }
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "{service} did not start; stderr: {}",
                        stderr.lock().unwrap()
                    );
                }
            }
        }
        self.children.insert(service, (child, stderr));
    }

    /// SIGKILL: no shutdown, no final checkpoint, unacknowledged messages in flight.
    fn kill(&mut self, service: &'static str) {
        let (mut child, _) = self.children.remove(service).expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Fails if a service died by itself.
    fn assert_alive(&mut self) {
        for (name, (child, stderr)) in &mut self.children {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("{name} exited with {status}: {}", stderr.lock().unwrap());
            }
        }
    }

    async fn stores(&self) -> Vec<Arc<PgStore>> {
        let mut out = Vec::new();
        for service in ["orders", "products", "payments", "notifications"] {
            let mut config = PgConfig::new(pg_url()).with_schema(self.schema(service));
            config.pool_size_max = 2;
            out.push(
                PgStore::open(config)
                    .await
                    .expect("the service's schema opens"),
            );
        }
        out
    }
}

impl Drop for ShopProcesses {
    fn drop(&mut self) {
        for (_, (mut child, _)) in self.children.drain() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let schemas: Vec<String> = SERVICES.iter().map(|s| self.schema(s)).collect();
        let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", schemas.join(", "));
        let _ = Command::new("psql")
            .args([&pg_url(), "-qc", &drop])
            .output();
        let stream = self.run.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                if let Ok(client) = async_nats::connect(nats_url()).await {
                    let _ = async_nats::jetstream::new(client)
                        .delete_stream(&stream)
                        .await;
                }
            });
        })
        .join();
    }
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn send(&self, req: reqwest::RequestBuilder, token: Option<&str>) -> (StatusCode, Value) {
        let req = match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().await.expect("the gateway answers");
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }
    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        let req = self.http.post(format!("{}{path}", self.base)).json(&body);
        self.send(req, token).await
    }
    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req, token).await
    }
    async fn user(&self, name: &str) -> String {
        let creds = json!({"username": name, "password": "secret-password"});
        let (s, body) = self.post("/api/auth/register", None, creds.clone()).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        self.login(creds).await
    }
    async fn login(&self, creds: Value) -> String {
        let (s, body) = self.post("/api/auth/login", None, creds).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }
    async fn product(&self, admin: &str, stock: i64) -> u64 {
        let (s, body) = self
            .post(
                "/api/products",
                Some(admin),
                json!({"name": "Keyboard", "price": 1000, "stock": stock}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        assert_eq!(body["stock"], stock);
        body["productId"].as_u64().unwrap()
    }
    async fn order(&self, token: &str, product: u64, quantity: i64, method: &str) -> String {
        let body = json!({"orderItems": [{"productId": product, "quantity": quantity}],
            "shippingAddress": "서울시 강남구", "paymentMethod": method});
        let (s, body) = self.post("/api/orders", Some(token), body).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["status"], "PENDING");
        body["orderId"].as_str().unwrap().to_owned()
    }
    async fn wait_terminal(&self, token: &str, order_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (s, body) = self
                .get(&format!("/api/orders/{order_id}"), Some(token))
                .await;
            assert_eq!(s, StatusCode::OK, "{body}");
            if body["status"] != "PENDING" {
                return body;
            }
            assert!(Instant::now() < deadline, "{order_id} still PENDING");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    async fn wait_stock(&self, product: u64, stock: i64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, body) = self.get(&format!("/api/products/{product}"), None).await;
            if body["stock"] == stock {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "stock {body} never became {stock}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn websocket(base: &str, token: &str) -> Socket {
    let url = format!(
        "{}/ws/notifications?token={token}",
        base.replace("http://", "ws://")
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let hello = socket.next().await.unwrap().unwrap();
    assert!(hello.to_text().unwrap().contains("CONNECTED"), "{hello:?}");
    socket
}

/// The next notification on `socket`, if one comes within `wait`.
async fn next_notification(socket: &mut Socket, wait: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(wait, socket.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Some(serde_json::from_str(&t).unwrap()),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_processes_pass_the_scenarios_and_survive_killed_services() {
    require_servers().await;
    let mut shop = ShopProcesses::start();
    let api = Api {
        base: shop.gateway.clone(),
        http: reqwest::Client::new(),
    };
    let admin = api
        .login(json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let product = api.product(&admin, 10).await;
    let mut alice_ws = websocket(&api.base, &alice).await;
    let mut bob_ws = websocket(&api.base, &bob).await;

    // The gateway's own rules, before anything reaches the broker.
    let good = json!({"orderItems": [{"productId": product, "quantity": 1}],
        "shippingAddress": "서울시 강남구", "paymentMethod": "CREDIT_CARD"});
    assert_eq!(
        api.post("/api/orders", None, good.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    let mut bad = good.clone();
    bad["orderItems"][0]["quantity"] = json!(0);
    assert_eq!(
        api.post("/api/orders", Some(&alice), bad).await.0,
        StatusCode::BAD_REQUEST
    );
    let mut unknown = good.clone();
    unknown["orderItems"][0]["productId"] = json!(999);
    assert_eq!(
        api.post("/api/orders", Some(&alice), unknown).await.0,
        StatusCode::BAD_REQUEST
    );
    let (s, _) = api
        .post(
            "/api/products",
            Some(&alice),
            json!({"name": "x", "price": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Seed 004, scenario 1: a normal order is CONFIRMED.
    let normal = api.order(&alice, product, 2, "CREDIT_CARD").await;
    let (s, pending) = api
        .get(&format!("/api/orders/{normal}"), Some(&alice))
        .await;
    assert_eq!(s, StatusCode::OK, "readable at once: {pending}");
    assert_eq!(
        api.get(&format!("/api/orders/{normal}"), Some(&bob))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let done = api.wait_terminal(&alice, &normal).await;
    assert_eq!(done["status"], "CONFIRMED", "{done}");
    assert_eq!(done["totalAmount"], 2000);
    api.wait_stock(product, 8).await;

    // Scenario 2: more than the stock → CANCELLED via StockReservationFailed.
    let too_many = api.order(&alice, product, 999, "CREDIT_CARD").await;
    let done = api.wait_terminal(&alice, &too_many).await;
    assert_eq!(done["status"], "CANCELLED", "{done}");
    assert!(
        done["reason"]
            .as_str()
            .unwrap()
            .contains("insufficient stock"),
        "{done}"
    );

    // Scenario 3: a declined card → stock released, CANCELLED.
    let declined = api.order(&alice, product, 3, "DECLINED_CARD").await;
    let done = api.wait_terminal(&alice, &declined).await;
    assert_eq!(done["status"], "CANCELLED", "{done}");
    assert!(
        done["reason"].as_str().unwrap().contains("declined"),
        "{done}"
    );
    api.wait_stock(product, 8).await;

    // One notification per terminal state, to its owner only.
    let mut notified = HashMap::new();
    while notified.len() < 3 {
        let n = next_notification(&mut alice_ws, Duration::from_secs(30))
            .await
            .expect("alice is notified of each of her orders");
        notified.insert(n["orderId"].as_str().unwrap().to_owned(), n["type"].clone());
    }
    assert_eq!(notified[&normal], "ORDER_CONFIRMED");
    assert_eq!(notified[&too_many], "ORDER_CANCELLED");
    assert_eq!(notified[&declined], "ORDER_CANCELLED");
    assert!(
        next_notification(&mut bob_ws, Duration::from_millis(300))
            .await
            .is_none()
    );
    let (_, listing) = api.get("/api/notifications", Some(&alice)).await;
    assert_eq!(listing.as_array().unwrap().len(), 3, "{listing}");

    // A load of orders while services are killed and restarted.
    const ORDERS: usize = 400;
    const STOCK: i64 = 250;
    let hot = api.product(&admin, STOCK).await;
    let mut tokens = Vec::new();
    for i in 0..8 {
        tokens.push(api.user(&format!("load-{i}")).await);
    }
    let placed = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut clients = Vec::new();
    for token in tokens {
        let (api, placed, next) = (
            Api {
                base: api.base.clone(),
                http: api.http.clone(),
            },
            placed.clone(),
            next.clone(),
        );
        clients.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= ORDERS {
                    return;
                }
                let method = if i % 7 == 3 {
                    "DECLINED_CARD"
                } else {
                    "CREDIT_CARD"
                };
                let id = api.order(&token, hot, 1, method).await;
                placed.lock().unwrap().push((id, token.clone()));
            }
        }));
    }
    for (at, victim) in [
        (ORDERS / 4, "products"),
        (ORDERS / 2, "orders"),
        (3 * ORDERS / 4, "payments"),
    ] {
        while next.load(std::sync::atomic::Ordering::Relaxed) < at {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        shop.kill(victim);
        tokio::time::sleep(Duration::from_millis(300)).await;
        shop.spawn(victim);
    }
    for c in clients {
        c.await.unwrap();
    }
    shop.assert_alive();
    let placed = placed.lock().unwrap().clone();
    assert_eq!(placed.len(), ORDERS);

    // Every order reaches a terminal state, as the gateway reports it.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut pending: Vec<(String, String)> = placed.clone();
    let mut confirmed_seen = 0;
    while !pending.is_empty() {
        let mut still = Vec::new();
        for (id, token) in pending {
            let (s, body) = api.get(&format!("/api/orders/{id}"), Some(&token)).await;
            assert_eq!(s, StatusCode::OK, "{body}");
            match body["status"].as_str() {
                Some("PENDING") => still.push((id, token)),
                Some("CONFIRMED") => confirmed_seen += 1,
                _ => {}
            }
        }
        pending = still;
        assert!(
            Instant::now() < deadline,
            "{} orders still PENDING after the restarts",
            pending.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shop.assert_alive();

    // The invariants, over the services' own stores once the flow has settled.
    let stores = shop.stores().await;
    let contexts = eventum_shop::audit::ContextStores {
        orders: stores[0].as_ref(),
        products: stores[1].as_ref(),
        payments: stores[2].as_ref(),
        notifications: stores[3].as_ref(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while eventum_shop::audit::missing_notifications_contexts(contexts)
        .await
        .unwrap()
        > 0
    {
        assert!(Instant::now() < deadline, "notifications missing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = eventum_shop::audit::audit_contexts(contexts).await.unwrap();
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!(
        report.orders,
        ORDERS + 3,
        "every accepted order was created once"
    );
    assert_eq!(report.pending, 0);
    assert_eq!(
        report.confirmed,
        confirmed_seen + 1,
        "the gateway agrees with the log"
    );
    // A declined order holds its unit until it is released, so an order at the end
    // may find none left: at most the stock is sold, and every unit is accounted for.
    let declined_orders = (0..ORDERS).filter(|i| i % 7 == 3).count();
    let load_confirmed = confirmed_seen as i64;
    assert!(load_confirmed <= STOCK.min((ORDERS - declined_orders) as i64));
    assert!(load_confirmed > 0);
    assert_eq!(
        report.stock[&hot],
        STOCK - load_confirmed,
        "no unit lost or sold twice"
    );
    api.wait_stock(hot, STOCK - load_confirmed).await;
    let mut per_order: HashMap<String, u32> = HashMap::new();
    let notifications = stores[3]
        .read_category("notification", 0, 10_000)
        .await
        .unwrap();
    for e in &notifications {
        let data: Value = serde_json::from_slice(&e.data).unwrap();
        *per_order
            .entry(data["orderId"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let placed_ids: HashSet<&String> = placed.iter().map(|(id, _)| id).collect();
    assert!(
        placed_ids.iter().all(|id| per_order.get(*id) == Some(&1)),
        "one notification each"
    );
    for s in stores {
        s.shutdown();
    }

    // `eventum shop load` measures this shop through the gateway and its WebSockets.
    let out = Command::new(BIN)
        .args([
            "shop",
            "load",
            "--server",
            &api.base,
            "--admin-password",
            ADMIN_PASSWORD,
        ])
        .args([
            "--orders",
            "40",
            "--concurrency",
            "4",
            "--watch",
            "ws",
            "--json",
        ])
        .output()
        .expect("run eventum shop load");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(report["accepted"], 40, "{report}");
    assert_eq!(report["confirmed"], 40, "{report}");
    assert_eq!(report["missing"], 0, "{report}");
    shop.assert_alive();
}
