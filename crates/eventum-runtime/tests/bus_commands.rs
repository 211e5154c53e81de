//! The command bus over the real log store: routing, domain refusals, validation,
//! idempotency keys (also across a restart), conflicts, middleware, causation.

mod common;

use std::sync::Arc;

use common::*;
use eventum_core::{
    CommandEnvelope, EventStore, ExpectedVersion, NewEvent, ReadDirection, StreamName,
};
use eventum_runtime::{
    Authorize, BusConfig, CommandBus, CommandMeta, DispatchError, Principal, RegisterError,
    Repository, RepositoryConfig, RequirePrincipal,
};
use uuid::Uuid;

fn bus(store: &Arc<dyn EventStore>, config: RepositoryConfig) -> CommandBus {
    CommandBus::builder(BusConfig::default())
        .aggregate(Repository::<Account>::new(store.clone(), config))
        .unwrap()
        .build()
}

async fn stream_len(store: &Arc<dyn EventStore>, id: &str) -> usize {
    let stream = StreamName::new(format!("account-{id}")).unwrap();
    match store
        .read_stream(&stream, None, ReadDirection::Forward, 1000)
        .await
    {
        Ok(events) => events.len(),
        Err(_) => 0,
    }
}

#[tokio::test]
async fn commands_append_events_and_refusals_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let bus = bus(&store, RepositoryConfig::default());

    let opened = bus.dispatch(open("1"), CommandMeta::new()).await.unwrap();
    assert_eq!(
        (opened.stream.as_str(), opened.version),
        ("account-1", Some(0))
    );
    let deposited = bus
        .dispatch(deposit("1", 50), CommandMeta::new())
        .await
        .unwrap();
    assert_eq!(deposited.version, Some(1));
    assert!(!deposited.duplicate);

    let refused = bus
        .dispatch(
            AccountCommand::Withdraw {
                id: "1".into(),
                amount: 80,
            },
            CommandMeta::new(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, DispatchError::Rejected { code, .. } if code == "insufficient_funds"),
        "{refused:?}"
    );
    assert_eq!(refused.code(), eventum_core::ErrorCode::DomainRejected);
    let invalid = bus
        .dispatch(deposit("1", 0), CommandMeta::new())
        .await
        .unwrap_err();
    assert!(matches!(invalid, DispatchError::Invalid(ref m) if m.contains("positive")));
    let not_open = bus
        .dispatch(deposit("2", 5), CommandMeta::new())
        .await
        .unwrap_err();
    assert!(matches!(not_open, DispatchError::Rejected { ref code, .. } if code == "not_open"));

    assert_eq!(stream_len(&store, "1").await, 2);
    assert_eq!(stream_len(&store, "2").await, 0);
    let repo = Repository::<Account>::new(store.clone(), RepositoryConfig::default());
    let loaded = repo.load("1").await.unwrap();
    assert_eq!((loaded.state.balance, loaded.version), (50, Some(1)));
}

#[tokio::test]
async fn a_repeated_command_id_returns_the_first_outcome_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let command_id = Uuid::now_v7();
    let first = {
        let store = open_store(dir.path());
        let bus = bus(&store, RepositoryConfig::default());
        bus.dispatch(open("7"), CommandMeta::new()).await.unwrap();
        let first = bus
            .dispatch(deposit("7", 10), CommandMeta::with_id(command_id))
            .await
            .unwrap();
        let again = bus
            .dispatch(deposit("7", 10), CommandMeta::with_id(command_id))
            .await
            .unwrap();
        assert!(again.duplicate);
        assert_eq!(
            (again.version, &again.event_ids),
            (first.version, &first.event_ids)
        );
        first
    };
    // A new process: no bus memory, no repository cache; the stream itself remembers.
    let store = open_store(dir.path());
    let bus = bus(&store, RepositoryConfig::default());
    bus.dispatch(deposit("7", 1), CommandMeta::new())
        .await
        .unwrap();
    let again = bus
        .dispatch(deposit("7", 10), CommandMeta::with_id(command_id))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(
        again.version, first.version,
        "the first outcome, not the current version"
    );
    assert_eq!(again.event_ids, first.event_ids);
    assert_eq!(stream_len(&store, "7").await, 3);
    let repo = Repository::<Account>::new(store.clone(), RepositoryConfig::default());
    assert_eq!(repo.load("7").await.unwrap().state.balance, 11);
}

#[tokio::test]
async fn a_refused_command_id_is_refused_again_without_running() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let bus = bus(&store, RepositoryConfig::default());
    let id = Uuid::now_v7();
    let err = bus
        .dispatch(deposit("9", 5), CommandMeta::with_id(id))
        .await
        .unwrap_err();
    assert!(matches!(err, DispatchError::Rejected { .. }));
    bus.dispatch(open("9"), CommandMeta::new()).await.unwrap();
    // The account is open now, but this id's outcome was a refusal: it stays one.
    let again = bus
        .dispatch(deposit("9", 5), CommandMeta::with_id(id))
        .await
        .unwrap_err();
    assert!(matches!(again, DispatchError::Rejected { ref code, .. } if code == "not_open"));
    assert_eq!(stream_len(&store, "9").await, 1);
}

#[tokio::test]
async fn events_carry_command_correlation_and_causation() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let bus = bus(&store, RepositoryConfig::default());
    let correlation = Uuid::now_v7();
    let cause = Uuid::now_v7();
    let meta = CommandMeta::new().caused_by(eventum_core::Causation {
        correlation_id: correlation,
        causation_id: cause,
    });
    let command_id = meta.command_id;
    bus.dispatch(open("c"), meta).await.unwrap();
    let stream = StreamName::new("account-c").unwrap();
    let events = store
        .read_stream(&stream, None, ReadDirection::Forward, 10)
        .await
        .unwrap();
    assert_eq!(events[0].correlation_id, correlation);
    assert_eq!(
        events[0].causation_id, command_id,
        "caused by the command, not its cause"
    );
    let metadata = events[0].metadata_json();
    assert_eq!(metadata["command_id"], command_id.to_string());
    assert_eq!(metadata["command_type"], "Open");
    assert_eq!(events[0].event_type, "Opened");
}

#[tokio::test]
async fn json_envelopes_route_by_type_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let bus = bus(&store, RepositoryConfig::default());
    let ok = bus
        .dispatch_envelope(
            CommandEnvelope::new("Open", serde_json::json!({"id": "j", "owner": "bo"})),
            None,
        )
        .await
        .unwrap();
    assert_eq!(ok.version, Some(0));
    let unknown = bus
        .dispatch_envelope(CommandEnvelope::new("Close", serde_json::json!({})), None)
        .await
        .unwrap_err();
    assert!(matches!(unknown, DispatchError::UnknownCommand(ref t) if t == "Close"));
    let bad = bus
        .dispatch_envelope(
            CommandEnvelope::new("Deposit", serde_json::json!({"id": "j", "amount": "x"})),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(bad, DispatchError::Invalid(_)), "{bad:?}");
    let bad_id = bus
        .dispatch_envelope(
            CommandEnvelope::new("Open", serde_json::json!({"id": "", "owner": "x"})),
            None,
        )
        .await;
    // "account-" is a valid stream name; an id with a control character is not.
    assert!(bad_id.is_ok());
    let control = bus
        .dispatch_envelope(
            CommandEnvelope::new("Open", serde_json::json!({"id": "a\u{1}", "owner": "x"})),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(control, DispatchError::Invalid(_)));
    assert_eq!(stream_len(&store, "j").await, 1);
    assert_eq!(bus.command_types(), vec!["Deposit", "Open", "Withdraw"]);
}

#[tokio::test]
async fn a_stale_cache_is_caught_by_the_expected_version_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let bus = bus(&store, RepositoryConfig::default());
    bus.dispatch(open("s"), CommandMeta::new()).await.unwrap();
    bus.dispatch(deposit("s", 10), CommandMeta::new())
        .await
        .unwrap();
    // Another process deposits behind this bus's cache.
    let other = bus_with_attempts(&store, 5);
    other
        .dispatch(deposit("s", 5), CommandMeta::new())
        .await
        .unwrap();
    let r = bus
        .dispatch(
            AccountCommand::Withdraw {
                id: "s".into(),
                amount: 15,
            },
            CommandMeta::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        r.version,
        Some(3),
        "decided again on the fresh state (balance 15)"
    );

    // With a single attempt the conflict is reported as such, and nothing is written.
    let single = bus_with_attempts(&store, 1);
    single
        .dispatch(deposit("s", 1), CommandMeta::new())
        .await
        .unwrap();
    other
        .dispatch(deposit("s", 1), CommandMeta::new())
        .await
        .unwrap();
    let err = single
        .dispatch(deposit("s", 1), CommandMeta::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, DispatchError::Conflict { attempts: 1, .. }),
        "{err:?}"
    );
    assert_eq!(err.code(), eventum_core::ErrorCode::WrongExpectedVersion);
    assert_eq!(stream_len(&store, "s").await, 6);
}

fn bus_with_attempts(store: &Arc<dyn EventStore>, attempts: u32) -> CommandBus {
    bus(
        store,
        RepositoryConfig {
            conflict_attempts_max: attempts,
            ..RepositoryConfig::default()
        },
    )
}

#[tokio::test]
async fn concurrent_buses_on_one_aggregate_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let buses: Vec<Arc<CommandBus>> = (0..4)
        .map(|_| Arc::new(bus_with_attempts(&store, 50)))
        .collect();
    buses[0]
        .dispatch(open("hot"), CommandMeta::new())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for (i, bus) in buses.iter().enumerate() {
        let bus = bus.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                bus.dispatch(deposit("hot", i as u64 + 1), CommandMeta::new())
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let repo = Repository::<Account>::new(store.clone(), RepositoryConfig::default());
    let loaded = repo.load("hot").await.unwrap();
    assert_eq!(loaded.state.balance, 25 * (1 + 2 + 3 + 4));
    assert_eq!(loaded.version, Some(100));
}

#[tokio::test]
async fn middleware_and_registration_rules() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let duplicate = CommandBus::builder(BusConfig::default())
        .aggregate(Repository::<Account>::new(
            store.clone(),
            RepositoryConfig::default(),
        ))
        .unwrap()
        .aggregate(Repository::<Account>::new(
            store.clone(),
            RepositoryConfig::default(),
        ));
    assert!(matches!(
        duplicate,
        Err(RegisterError::DuplicateCommandType("Open"))
    ));

    let bus = CommandBus::builder(BusConfig::default())
        .aggregate(Repository::<Account>::new(
            store.clone(),
            RepositoryConfig::default(),
        ))
        .unwrap()
        .layer(RequirePrincipal {
            public_command_types: vec!["Open"],
        })
        .layer(Authorize(|ctx: &eventum_runtime::CommandContext| {
            match (&ctx.meta.principal, ctx.command_type) {
                (Some(p), "Withdraw") if !p.has_role("teller") => Err(DispatchError::Forbidden(
                    "withdrawals need the teller role".into(),
                )),
                _ => Ok(()),
            }
        }))
        .build();
    bus.dispatch(open("m"), CommandMeta::new()).await.unwrap();
    let anonymous = bus
        .dispatch(deposit("m", 5), CommandMeta::new())
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), eventum_core::ErrorCode::Unauthorized);
    let ann = Principal {
        subject: "ann".into(),
        roles: vec![],
    };
    bus.dispatch(deposit("m", 5), CommandMeta::new().by(ann.clone()))
        .await
        .unwrap();
    let withdraw = AccountCommand::Withdraw {
        id: "m".into(),
        amount: 1,
    };
    let forbidden = bus
        .dispatch(withdraw.clone(), CommandMeta::new().by(ann))
        .await
        .unwrap_err();
    assert_eq!(forbidden.code(), eventum_core::ErrorCode::Forbidden);
    let teller = Principal {
        subject: "t".into(),
        roles: vec!["teller".into()],
    };
    bus.dispatch(withdraw, CommandMeta::new().by(teller))
        .await
        .unwrap();
    assert_eq!(stream_len(&store, "m").await, 3);

    let closed = CommandBus::builder(BusConfig {
        commands_in_flight_max: 0,
        ..BusConfig::default()
    })
    .aggregate(Repository::<Account>::new(
        store.clone(),
        RepositoryConfig::default(),
    ))
    .unwrap()
    .build();
    let err = closed
        .dispatch(open("z"), CommandMeta::new())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        DispatchError::Overloaded { in_flight_max: 0 }
    ));
}

#[tokio::test]
async fn an_undecodable_event_in_the_stream_is_a_technical_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let stream = StreamName::new("account-x").unwrap();
    store
        .append(
            &stream,
            ExpectedVersion::NoStream,
            vec![NewEvent::new("Exploded", &1).unwrap()],
        )
        .await
        .unwrap();
    let bus = bus(&store, RepositoryConfig::default());
    let err = bus
        .dispatch(deposit("x", 1), CommandMeta::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, DispatchError::Undecodable { version: 0, .. }),
        "{err:?}"
    );
    assert_eq!(err.code(), eventum_core::ErrorCode::Corrupt);
}
