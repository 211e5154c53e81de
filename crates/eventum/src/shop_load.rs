//! `eventum shop load`: a load generator against a running server's shop, over HTTP.
//! Registers users, places orders from `--concurrency` clients (optionally paced at
//! `--rate`), follows the `order` category over SSE to see each order reach its terminal
//! state, and reports accepted and confirmed orders per second with the p50/p99/p999 of
//! the accept latency and of the time to a terminal state.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};
use futures::StreamExt;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::client::{ServerOpt, check};
use crate::sse::SseParser;

#[derive(Args, Debug)]
pub struct ShopArgs {
    #[command(subcommand)]
    pub command: ShopCommand,
}

#[derive(Subcommand, Debug)]
pub enum ShopCommand {
    /// Places orders against a running `eventum serve` and measures the shop.
    Load(LoadArgs),
    /// Runs one service of the shop as its own process, over a broker.
    Service(crate::shop_service::ServiceArgs),
}

#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    #[command(flatten)]
    pub server: ServerOpt,
    /// Orders to place.
    #[arg(long, default_value_t = 10_000)]
    pub orders: usize,
    /// Clients placing orders at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Users to register (default: one per client, at most one per order).
    #[arg(long)]
    pub users: Option<usize>,
    /// Target orders per second over all clients (default: as fast as they go).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Product to order (default: a new product with stock for every order, created as
    /// admin).
    #[arg(long)]
    pub product: Option<u64>,
    /// The admin's password, to create the load product. Default: read from
    /// `<data>/shop/admin-password`.
    #[arg(long, env = "EVENTUM_SHOP_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// The server's data directory, where the admin password is kept.
    #[arg(long, default_value = "./eventum-data")]
    pub data: PathBuf,
    /// Payment method of every order (`DECLINED_CARD` makes them all fail).
    #[arg(long, default_value = "CREDIT_CARD")]
    pub payment_method: String,
    /// Seconds to wait for the last terminal state after the last order.
    #[arg(long, default_value_t = 60)]
    pub timeout_s: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// How to see orders end: `sse` follows the server's `order` category (`eventum
    /// serve`); `ws` listens to each load user's `/ws/notifications` (any shop front door,
    /// such as the gateway of `eventum shop service`).
    #[arg(long, default_value = "sse", value_parser = ["sse", "ws"])]
    pub watch: String,
}

pub async fn run(args: ShopArgs) -> anyhow::Result<()> {
    match args.command {
        ShopCommand::Load(a) => load(a).await,
        ShopCommand::Service(a) => crate::shop_service::run(a).await,
    }
}

/// Terminal states seen (on the SSE stream or the WebSockets).
use crate::shop_load_ws::Terminals;

struct Placed {
    order_id: String,
    sent_at: Instant,
}

async fn post(
    http: &reqwest::Client,
    url: reqwest::Url,
    token: Option<&str>,
    body: Value,
) -> anyhow::Result<Value> {
    let mut req = http.post(url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = check(req.send().await.context("cannot reach the server")?).await?;
    Ok(res.json().await.unwrap_or(Value::Null))
}

async fn login(
    http: &reqwest::Client,
    server: &ServerOpt,
    user: &str,
    password: &str,
) -> anyhow::Result<String> {
    let body = post(
        http,
        server.url(&["api", "auth", "login"])?,
        None,
        json!({"username": user, "password": password}),
    )
    .await?;
    body["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("login answered without a token: {body}"))
}

async fn load_product(http: &reqwest::Client, args: &LoadArgs) -> anyhow::Result<u64> {
    if let Some(p) = args.product {
        return Ok(p);
    }
    let password = match &args.admin_password {
        Some(p) => p.clone(),
        None => std::fs::read_to_string(args.data.join("shop").join("admin-password"))
            .map(|s| s.trim().to_owned())
            .with_context(|| {
                format!(
                    "no --product and no admin password (--admin-password, or {})",
                    args.data.join("shop/admin-password").display()
                )
            })?,
    };
    let admin = login(http, &args.server, "admin", &password).await?;
    let name = format!("load-{}", uuid::Uuid::now_v7().simple());
    let body = post(
        http,
        args.server.url(&["api", "products"])?,
        Some(&admin),
        json!({"name": name, "price": 1000, "stock": args.orders}),
    )
    .await?;
    body["productId"]
        .as_u64()
        .ok_or_else(|| anyhow!("product creation answered {body}"))
}

async fn register_users(
    http: &reqwest::Client,
    server: &ServerOpt,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let run = &uuid::Uuid::now_v7().simple().to_string()[20..];
    let names: Vec<String> = (0..count).map(|i| format!("load-{run}-{i}")).collect();
    // Hashing is the server's slowest request: a few at a time.
    let tokens = futures::stream::iter(names)
        .map(|name| async move {
            let password = "load-password";
            post(
                http,
                server.url(&["api", "auth", "register"])?,
                None,
                json!({"username": name, "password": password}),
            )
            .await?;
            login(http, server, &name, password).await
        })
        .buffered(8)
        .collect::<Vec<_>>()
        .await;
    tokens.into_iter().collect()
}

/// Follows the `order` category from `from` and records each terminal event.
async fn follow_terminals(
    http: reqwest::Client,
    server: ServerOpt,
    from: u64,
    terminals: Terminals,
    bar: ProgressBar,
) -> anyhow::Result<()> {
    let url = server.url(&["subscribe"])?;
    let req = http
        .get(url)
        .query(&[("category", "order".to_owned()), ("from", from.to_string())]);
    let res = check(req.send().await.context("cannot subscribe")?).await?;
    let mut body = res.bytes_stream();
    let mut parser = SseParser::default();
    while let Some(chunk) = body.next().await {
        let now = Instant::now();
        for event in parser.push(&chunk.context("subscription lost")?) {
            if event.event.as_deref() == Some("error") {
                bail!("subscription failed: {}", event.data);
            }
            let Ok(v) = serde_json::from_str::<Value>(&event.data) else {
                continue;
            };
            let confirmed = match v["type"].as_str() {
                Some("OrderConfirmed") => true,
                Some("OrderCancelled") => false,
                _ => continue,
            };
            if let Some(id) = v["data"]["orderId"].as_str() {
                terminals
                    .lock()
                    .await
                    .insert(id.to_owned(), (now, confirmed));
                bar.inc(1);
            }
        }
    }
    Ok(())
}

fn quantiles(h: &Histogram<u64>) -> Value {
    json!({
        "p50": h.value_at_quantile(0.50), "p99": h.value_at_quantile(0.99),
        "p999": h.value_at_quantile(0.999), "max": h.max(),
    })
}

pub async fn load(args: LoadArgs) -> anyhow::Result<()> {
    if args.orders == 0 || args.concurrency == 0 {
        bail!("--orders and --concurrency must be at least 1");
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency + 4)
        .build()?;
    let health: Value = check(
        http.get(args.server.url(&["health"])?)
            .send()
            .await
            .context("cannot reach the server")?,
    )
    .await?
    .json()
    .await?;
    // Only the store's API has a head (the SSE watch starts there).
    let from = health["head_position"].as_u64().map_or(0, |p| p + 1);
    let product = load_product(&http, &args).await?;
    let users = args.users.unwrap_or(args.concurrency).clamp(1, args.orders);
    if !args.json {
        eprintln!("registering {users} users, product {product}");
    }
    let tokens = Arc::new(register_users(&http, &args.server, users).await?);

    let terminals: Terminals = Arc::default();
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(args.orders as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} terminal  {per_sec}  {elapsed_precise}")
            .expect("a valid template"),
    );
    let follower = if args.watch == "ws" {
        let watching =
            crate::shop_load_ws::follow(&args.server, &tokens, terminals.clone(), bar.clone())
                .await?;
        tokio::spawn(watching)
    } else {
        tokio::spawn(follow_terminals(
            http.clone(),
            args.server.clone(),
            from,
            terminals.clone(),
            bar.clone(),
        ))
    };

    let next = Arc::new(AtomicUsize::new(0));
    let url = args.server.url(&["api", "orders"])?;
    let started = Instant::now();
    let mut clients = Vec::new();
    for c in 0..args.concurrency {
        let (http, url, next, tokens) = (http.clone(), url.clone(), next.clone(), tokens.clone());
        let (rate, orders, method) = (args.rate, args.orders, args.payment_method.clone());
        clients.push(tokio::spawn(async move {
            let mut placed = Vec::new();
            let mut accept = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("histogram");
            let mut errors = Vec::new();
            let token = &tokens[c % tokens.len()];
            let body = json!({"orderItems": [{"productId": product, "quantity": 1}], "shippingAddress": "서울시 강남구 테헤란로 1", "paymentMethod": method});
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= orders {
                    break;
                }
                if let Some(rate) = rate {
                    let due = started + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let sent_at = Instant::now();
                let res = http.post(url.clone()).bearer_auth(token).json(&body).send().await;
                let outcome = match res {
                    Ok(r) if r.status() == reqwest::StatusCode::ACCEPTED => r.json::<Value>().await.map_err(anyhow::Error::from),
                    Ok(r) => Err(anyhow!("{} {}", r.status(), r.text().await.unwrap_or_default())),
                    Err(e) => Err(e.into()),
                };
                match outcome {
                    Ok(v) => {
                        accept.saturating_record(sent_at.elapsed().as_micros() as u64);
                        let order_id = v["orderId"].as_str().unwrap_or_default().to_owned();
                        placed.push(Placed { order_id, sent_at });
                    }
                    Err(e) => errors.push(e.to_string()),
                }
            }
            (placed, accept, errors)
        }));
    }
    let mut placed = Vec::new();
    let mut accept = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?;
    let mut errors = Vec::new();
    for c in clients {
        let (p, h, e) = c.await?;
        placed.extend(p);
        accept.add(h)?;
        errors.extend(e);
    }
    let accept_elapsed = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(args.timeout_s);
    loop {
        let seen = {
            let t = terminals.lock().await;
            placed
                .iter()
                .filter(|p| t.contains_key(&p.order_id))
                .count()
        };
        if seen == placed.len() || Instant::now() > deadline || follower.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bar.finish_and_clear();
    follower.abort();

    let t = terminals.lock().await;
    let mut ttt = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?;
    let (mut confirmed, mut cancelled, mut missing) = (0usize, 0usize, 0usize);
    let mut last_terminal = started;
    for p in &placed {
        match t.get(&p.order_id) {
            Some((at, ok)) => {
                ttt.saturating_record(at.saturating_duration_since(p.sent_at).as_micros() as u64);
                last_terminal = last_terminal.max(*at);
                if *ok { confirmed += 1 } else { cancelled += 1 }
            }
            None => missing += 1,
        }
    }
    let terminal_elapsed = last_terminal
        .saturating_duration_since(started)
        .max(Duration::from_micros(1));
    let accepted_per_s = placed.len() as f64 / accept_elapsed.as_secs_f64();
    let confirmed_per_s = confirmed as f64 / terminal_elapsed.as_secs_f64();
    let report = json!({
        "orders": args.orders, "concurrency": args.concurrency, "users": users, "rate": args.rate,
        "product": product, "accepted": placed.len(), "errors": errors.len(),
        "confirmed": confirmed, "cancelled": cancelled, "missing": missing,
        "accept_seconds": accept_elapsed.as_secs_f64(), "terminal_seconds": terminal_elapsed.as_secs_f64(),
        "accepted_per_s": accepted_per_s.round(), "confirmed_per_s": confirmed_per_s.round(),
        "accept_latency_us": quantiles(&accept), "time_to_terminal_us": quantiles(&ttt),
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "orders {} (concurrency {}, users {users}{})",
            args.orders,
            args.concurrency,
            args.rate
                .map(|r| format!(", paced at {r}/s"))
                .unwrap_or_default()
        );
        println!(
            "accepted   {:>8}  {:>10.0}/s   errors {}",
            placed.len(),
            accepted_per_s,
            errors.len()
        );
        println!(
            "confirmed  {confirmed:>8}  {confirmed_per_s:>10.0}/s   cancelled {cancelled}, not terminal {missing}"
        );
        println!(
            "{:<20} {:>10} {:>10} {:>10} {:>10}",
            "latency (µs)", "p50", "p99", "p999", "max"
        );
        for (name, h) in [("accept", &accept), ("time to terminal", &ttt)] {
            println!(
                "{:<20} {:>10} {:>10} {:>10} {:>10}",
                name,
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max()
            );
        }
        if let Some(e) = errors.first() {
            println!("first error: {e}");
        }
    }
    if missing > 0 || !errors.is_empty() {
        bail!(
            "{missing} orders did not reach a terminal state and {} were refused",
            errors.len()
        );
    }
    Ok(())
}
