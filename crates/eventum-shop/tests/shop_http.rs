//! The REST API and the WebSocket over a real listener: status codes of seed 004's
//! endpoints, JWT rules (401/403/admin), 202 for orders without waiting, 400 with nothing
//! written for bad orders, and notifications pushed only to their owner.

mod common;

use std::time::Duration;

use common::*;
use eventum_shop::FlowStyle;
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        let mut r = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().await.unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }
    async fn put(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        let resp = self
            .http
            .put(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }
    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut r = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().await.unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }
    async fn token(&self, user: &str, password: &str) -> String {
        let (s, body) = self
            .post(
                "/api/auth/login",
                None,
                json!({"username": user, "password": password}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }
    async fn user(&self, name: &str) -> String {
        let (s, body) = self
            .post(
                "/api/auth/register",
                None,
                json!({"username": name, "password": "secret-password"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        self.token(name, "secret-password").await
    }
    async fn wait_terminal(&self, order_id: &str, token: &str) -> Value {
        for _ in 0..2000 {
            let (s, body) = self
                .get(&format!("/api/orders/{order_id}"), Some(token))
                .await;
            assert_eq!(s, StatusCode::OK, "{body}");
            if body["status"] != "PENDING" {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("order {order_id} stayed PENDING");
    }
}

async fn serve(
    dir: &std::path::Path,
) -> (
    Api,
    eventum_shop::RunningShop,
    std::sync::Arc<eventum_log::LogStore>,
) {
    let (log, running) = start(dir, config(dir, FlowStyle::Orchestrated)).await;
    let app = eventum_shop::http::router(running.shop.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(eventum_server::serve_app(
        listener,
        app,
        std::future::pending(),
    ));
    let api = Api {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
    };
    (api, running, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_catalog_and_order_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let (api, running, log) = serve(dir.path()).await;

    // Registration and login.
    let alice = api.user("alice").await;
    let (s, body) = api
        .post(
            "/api/auth/register",
            None,
            json!({"username": "alice", "password": "another-password"}),
        )
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("already_exists"))
    );
    let (s, _) = api
        .post(
            "/api/auth/register",
            None,
            json!({"username": "Bad Name", "password": "secret-password"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = api
        .post(
            "/api/auth/register",
            None,
            json!({"username": "shorty", "password": "short"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, body) = api
        .post(
            "/api/auth/login",
            None,
            json!({"username": "alice", "password": "wrong-password"}),
        )
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let (s, _) = api
        .post(
            "/api/auth/login",
            None,
            json!({"username": "nobody", "password": "secret-password"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let bob = api.user("bob").await;
    let admin = api.token("admin", ADMIN_PASSWORD).await;

    // The catalog: admin only for writes.
    let product = json!({"name": "Keyboard", "description": "87 keys", "price": 89000, "stock": 5});
    let (s, _) = api.post("/api/products", None, product.clone()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, body) = api
        .post("/api/products", Some(&alice), product.clone())
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (s, created) = api.post("/api/products", Some(&admin), product).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let pid = created["productId"].as_u64().unwrap();
    let (s, _) = api
        .post(
            "/api/products",
            Some(&admin),
            json!({"name": "", "price": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = api
        .put(
            &format!("/api/products/{pid}/stock"),
            &alice,
            json!({"stock": 50}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, body) = api
        .put(
            &format!("/api/products/{pid}/stock"),
            &admin,
            json!({"stock": 50}),
        )
        .await;
    assert_eq!((s, body["stock"].as_i64()), (StatusCode::OK, Some(50)));
    let (s, body) = api
        .put(
            &format!("/api/products/{pid}/stock"),
            &admin,
            json!({"stock": -1}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let (s, _) = api
        .put("/api/products/999/stock", &admin, json!({"stock": 1}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, list) = api.get("/api/products", None).await;
    assert_eq!((s, list.as_array().unwrap().len()), (StatusCode::OK, 1));
    let (s, _) = api.get("/api/products/999", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Orders: 401 without a token, 202 at once, 403 for someone else's.
    let order = json!({"orderItems": [{"productId": pid, "quantity": 2}], "shippingAddress": "서울시 강남구", "paymentMethod": "CREDIT_CARD"});
    let (s, _) = api.post("/api/orders", None, order.clone()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = api
        .post("/api/orders", Some("not-a-token"), order.clone())
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, placed) = api.post("/api/orders", Some(&alice), order.clone()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{placed}");
    assert_eq!(placed["status"], "PENDING");
    let order_id = placed["orderId"].as_str().unwrap().to_owned();
    let (s, _) = api
        .get(&format!("/api/orders/{order_id}"), Some(&bob))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = api.get(&format!("/api/orders/{order_id}"), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let done = api.wait_terminal(&order_id, &alice).await;
    assert_eq!(done["status"], "CONFIRMED", "{done}");
    assert_eq!(done["totalAmount"], 178_000);
    assert_eq!(done["orderItems"][0]["productId"].as_u64(), Some(pid));
    assert!(done["createdAt"].as_str().is_some());
    let (s, admin_view) = api
        .get(&format!("/api/orders/{order_id}"), Some(&admin))
        .await;
    assert_eq!(
        (s, admin_view["status"].as_str()),
        (StatusCode::OK, Some("CONFIRMED"))
    );
    let (s, _) = api
        .get(
            "/api/orders/00000000-0000-7000-8000-000000000000",
            Some(&alice),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The declined card and the listing of one's own orders.
    let declined = json!({"orderItems": [{"productId": pid, "quantity": 1}], "shippingAddress": "Busan", "paymentMethod": "DECLINED_CARD"});
    let (_, placed) = api.post("/api/orders", Some(&alice), declined).await;
    let cancelled = api
        .wait_terminal(placed["orderId"].as_str().unwrap(), &alice)
        .await;
    assert_eq!(cancelled["status"], "CANCELLED");
    assert!(
        cancelled["reason"].as_str().unwrap().contains("declined"),
        "{cancelled}"
    );
    let mut listed = Value::Null;
    for _ in 0..500 {
        listed = api.get("/api/orders", Some(&alice)).await.1;
        if listed
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["status"] != "PENDING")
            && listed.as_array().unwrap().len() == 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let statuses: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["CONFIRMED", "CANCELLED"]);
    assert_eq!(
        api.get("/api/orders", Some(&bob)).await.1,
        json!([]),
        "bob sees none of alice's"
    );

    // Bad orders: 400 with a message, nothing written.
    let head = eventum_core::EventStore::head_position(log.as_ref());
    for (bad, says) in [
        (
            json!({"orderItems": [{"productId": 999, "quantity": 1}], "shippingAddress": "a", "paymentMethod": "CREDIT_CARD"}),
            "product 999 does not exist",
        ),
        (
            json!({"orderItems": [{"productId": pid, "quantity": 0}], "shippingAddress": "a", "paymentMethod": "CREDIT_CARD"}),
            "quantity",
        ),
        (
            json!({"orderItems": [], "shippingAddress": "a", "paymentMethod": "CREDIT_CARD"}),
            "orderItems must not be empty",
        ),
        (
            json!({"orderItems": [{"productId": pid, "quantity": 1}], "paymentMethod": "CREDIT_CARD"}),
            "shippingAddress is required",
        ),
        (
            json!({"orderItems": [{"productId": pid, "quantity": 1}], "shippingAddress": "a"}),
            "paymentMethod is required",
        ),
        (
            json!({"orderItems": vec![json!({"productId": pid, "quantity": 1}); 101], "shippingAddress": "a", "paymentMethod": "CREDIT_CARD"}),
            "limit is 100",
        ),
        (
            json!({"orderItems": [{"productId": pid, "quantity": "two"}], "shippingAddress": "a", "paymentMethod": "CREDIT_CARD"}),
            "quantity",
        ),
    ] {
        let (s, body) = api.post("/api/orders", Some(&alice), bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["message"].as_str().unwrap().contains(says),
            "{body} should say {says}"
        );
    }
    assert_eq!(
        eventum_core::EventStore::head_position(log.as_ref()),
        head,
        "bad orders wrote nothing"
    );

    // An Idempotency-Key makes a retried order the same order.
    let key = uuid::Uuid::new_v4().to_string();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let resp = api
            .http
            .post(format!("{}/api/orders", api.base))
            .bearer_auth(&alice)
            .header("Idempotency-Key", &key)
            .json(&order)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        ids.push(resp.json::<Value>().await.unwrap()["orderId"].clone());
    }
    assert_eq!(ids[0], ids[1]);
    // The same key from another user is another order.
    let resp = api
        .http
        .post(format!("{}/api/orders", api.base))
        .bearer_auth(&bob)
        .header("Idempotency-Key", &key)
        .json(&order)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let bobs = resp.json::<Value>().await.unwrap()["orderId"].clone();
    assert_ne!(bobs, ids[0]);
    let (s, doc) = api
        .get(
            &format!("/api/orders/{}", bobs.as_str().unwrap()),
            Some(&bob),
        )
        .await;
    assert_eq!((s, doc["userId"].as_str()), (StatusCode::OK, Some("bob")));

    running.shutdown().await;
    log.shutdown();
}

async fn ws_connect(
    api: &Api,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!(
        "{}/ws/notifications?token={token}",
        api.base.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connects");
    let hello = ws.next().await.unwrap().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(hello.to_text().unwrap()).unwrap()["type"],
        "CONNECTED"
    );
    ws
}

async fn next_json(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    within: Duration,
) -> Option<Value> {
    match tokio::time::timeout(within, ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => Some(serde_json::from_str(&t).unwrap()),
        Ok(other) => panic!("unexpected {other:?}"),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_pushes_only_the_callers_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let (api, running, log) = serve(dir.path()).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let pid = running
        .shop
        .create_product("Mouse".into(), String::new(), 25_000, 10)
        .await
        .unwrap();

    // No token, or a bad one: refused before the upgrade.
    let url = format!("{}/ws/notifications", api.base.replace("http://", "ws://"));
    assert!(tokio_tungstenite::connect_async(url.clone()).await.is_err());
    assert!(
        tokio_tungstenite::connect_async(format!("{url}?token=bad"))
            .await
            .is_err()
    );

    let mut alice_ws = ws_connect(&api, &alice).await;
    let mut bob_ws = ws_connect(&api, &bob).await;
    let order = json!({"orderItems": [{"productId": pid, "quantity": 1}], "shippingAddress": "Seoul", "paymentMethod": "CREDIT_CARD"});
    let (_, placed) = api.post("/api/orders", Some(&alice), order.clone()).await;
    let n = next_json(&mut alice_ws, Duration::from_secs(20))
        .await
        .expect("alice is notified");
    assert_eq!(
        (
            n["orderId"].clone(),
            n["type"].as_str(),
            n["userId"].as_str()
        ),
        (
            placed["orderId"].clone(),
            Some("ORDER_CONFIRMED"),
            Some("alice")
        )
    );
    assert_eq!(
        next_json(&mut bob_ws, Duration::from_millis(500)).await,
        None,
        "bob hears nothing of alice's order"
    );

    let (_, bobs) = api.post("/api/orders", Some(&bob), json!({"orderItems": [{"productId": pid, "quantity": 99}], "shippingAddress": "Seoul", "paymentMethod": "CREDIT_CARD"})).await;
    let n = next_json(&mut bob_ws, Duration::from_secs(20))
        .await
        .expect("bob is notified");
    assert_eq!(
        (n["orderId"].clone(), n["type"].as_str()),
        (bobs["orderId"].clone(), Some("ORDER_CANCELLED"))
    );
    assert_eq!(
        next_json(&mut alice_ws, Duration::from_millis(500)).await,
        None,
        "alice hears nothing of bob's order"
    );

    // Stored per user as well.
    let mut listed = json!([]);
    for _ in 0..500 {
        listed = api.get("/api/notifications", Some(&alice)).await.1;
        if listed.as_array().unwrap().len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(listed[0]["orderId"], placed["orderId"]);
    let _ = alice_ws.close(None).await;
    let _ = bob_ws.send(Message::Close(None)).await;
    running.shutdown().await;
    log.shutdown();
}
